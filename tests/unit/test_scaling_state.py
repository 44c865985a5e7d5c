"""The live loop rebuilds the policy's state from the cluster alone, so a restart changes nothing."""

from __future__ import annotations

from typing import Any

from thrifty.reconcile.scaling import scaling_state


def deployment(*, replicas: int = 2, updated: int = 2, max_num_seqs: int = 256) -> dict[str, Any]:
    return {
        "metadata": {"generation": 3},
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"args": ["m", "--max-num-seqs", str(max_num_seqs)]}]}},
        },
        "status": {"observedGeneration": 3, "replicas": replicas, "updatedReplicas": updated},
    }


def test_state_comes_from_the_deployment_and_the_decision_history() -> None:
    body = {
        "status": {
            "maxNumSeqs": {"engine": 256, "effective": 192},
            "decisions": [
                {"time": "2026-11-27T10:00:00Z", "action": "ScaleUp", "from": 1, "to": 2, "reason": "queue"},
                {
                    "time": "2026-11-27T09:00:00Z",
                    "action": "LowerMaxNumSeqs",
                    "from": 256,
                    "to": 192,
                    "reason": "kv",
                },
            ],
        }
    }
    state = scaling_state(body, deployment(), ["pod-a", "pod-b"])
    assert (state.replicas, state.ready_replicas) == (2, 2)
    assert (state.engine_max_num_seqs, state.effective_cap) == (256, 192)
    assert state.last_scale_up == 1795773600.0
    assert state.last_cap_change == 1795770000.0
    assert state.last_scale_down is None
    assert state.rollout_in_progress is False


def test_effective_cap_is_clamped_to_the_engine_flag_and_rollouts_are_seen() -> None:
    body = {"status": {"maxNumSeqs": {"effective": 300}}}
    state = scaling_state(body, deployment(updated=1, max_num_seqs=128), ["pod-a"])
    assert state.effective_cap == 128
    assert state.rollout_in_progress is True


def test_the_capacity_model_gets_the_pods_own_server_configuration() -> None:
    from pathlib import Path

    import yaml

    from thrifty.api import InferenceModel
    from thrifty.reconcile.scaling import server_config

    examples = Path(__file__).resolve().parents[2] / "examples"
    model = InferenceModel.model_validate(
        yaml.safe_load((examples / "llama-3.1-8b-fp8-h100.yaml").read_text())
    )

    config = server_config(model, max_num_seqs=96)

    assert config is not None
    assert config.gpu.gpu == "NVIDIA-H100-80GB-HBM3"
    assert config.max_num_seqs == 96
    assert config.weight_format.name == "fp8"


def test_a_model_the_calibration_does_not_know_gets_no_capacity_model() -> None:
    from thrifty.api import InferenceModel
    from thrifty.reconcile.scaling import server_config

    body = {
        "apiVersion": "thrifty.dev/v1alpha1",
        "kind": "InferenceModel",
        "metadata": {"name": "custom", "namespace": "models"},
        "spec": {
            "model": {"source": "pvc://weights/my-own-model"},
            "resources": {"gpu": {"product": "NVIDIA-H100-80GB-HBM3", "count": 1}},
        },
    }

    assert server_config(InferenceModel.model_validate(body), max_num_seqs=256) is None
