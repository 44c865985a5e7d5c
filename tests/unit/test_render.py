"""The renderer: whole manifests pinned by golden files, plus the properties that matter most."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from thrifty.api import InferenceModel
from thrifty.render import desired_children, engine_args
from thrifty.vllm_args import InvalidEngineArgs

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
GOLDEN = Path(__file__).parent / "golden"


def example(name: str, **changes: Any) -> InferenceModel:
    body = yaml.safe_load((REPO / "examples" / name).read_text())
    body["metadata"]["uid"] = "00000000-0000-0000-0000-000000000001"
    for path, value in changes.items():
        node = body
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return InferenceModel.model_validate(body)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_children_match_the_golden_files(path: Path) -> None:
    rendered = yaml.safe_dump_all(desired_children(example(path.name)), sort_keys=False)
    golden = GOLDEN / f"{path.stem}.yaml"
    if os.environ.get("THRIFTY_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(rendered)
    assert golden.exists(), f"{golden} is missing: run THRIFTY_UPDATE_GOLDEN=1 pytest {__file__}"
    assert rendered == golden.read_text(), (
        f"rendering changed: review, then THRIFTY_UPDATE_GOLDEN=1 pytest {__file__}"
    )


def test_deployment_targets_the_gpu_product_and_requests_the_gpus() -> None:
    deployment, _, _ = desired_children(example("llama-3.1-70b-awq-draft-4xh100.yaml"))
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    resources = pod["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == "4"


def test_engine_flags_follow_the_typed_spec() -> None:
    args = engine_args(example("llama-3.1-70b-awq-draft-4xh100.yaml"))
    assert args[0] == "meta-llama/Llama-3.1-70B-Instruct" or args[0].startswith("hugging-quants/")
    assert args[args.index("--tensor-parallel-size") + 1] == "4"
    speculative = json.loads(args[args.index("--speculative-config") + 1])
    assert speculative["method"] == "draft_model"
    assert speculative["model"] == "meta-llama/Llama-3.2-1B-Instruct"
    assert args[args.index("--quantization") + 1].startswith("awq")


def test_control_loop_overrides_replicas_and_engine_max_num_seqs() -> None:
    deployment = desired_children(example("llama-3.1-8b-fp8-h100.yaml"), replicas=3, max_num_seqs=384)[0]
    assert deployment["spec"]["replicas"] == 3
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--max-num-seqs") + 1] == "384"


def test_credentials_are_mounted_as_a_file_and_passed_by_path() -> None:
    deployment = desired_children(example("llama-3.1-8b-fp8-h100.yaml"))[0]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["HF_TOKEN_PATH"] == "/var/run/secrets/thrifty/credentials/token"
    assert "HF_TOKEN" not in env
    assert {"name": "credentials", "secret": {"secretName": "hf-token", "defaultMode": 0o440}} in pod[
        "volumes"
    ]
    assert not any("valueFrom" in e for e in container["env"])


def test_pod_runs_restricted_with_health_probes_and_scrape_annotations() -> None:
    deployment = desired_children(example("qwen2.5-1.5b-ngram-l4.yaml"))[0]
    template = deployment["spec"]["template"]
    security = template["spec"]["containers"][0]["securityContext"]
    assert security == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert template["spec"]["securityContext"]["runAsNonRoot"] is True
    assert template["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = template["spec"]["containers"][0]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
    assert template["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert template["metadata"]["annotations"]["prometheus.io/port"] == "8000"


def test_children_are_owned_by_the_model_for_garbage_collection() -> None:
    for child in desired_children(example("qwen2.5-1.5b-ngram-l4.yaml")):
        (owner,) = child["metadata"]["ownerReferences"]
        assert owner["kind"] == "InferenceModel"
        assert owner["controller"] is True


def test_unknown_extra_arg_is_refused_with_the_flag_named() -> None:
    model = example("qwen2.5-1.5b-ngram-l4.yaml", **{"spec.engine": {"extraArgs": ["--enable-turbo-mode"]}})
    with pytest.raises(InvalidEngineArgs, match="--enable-turbo-mode"):
        desired_children(model)
