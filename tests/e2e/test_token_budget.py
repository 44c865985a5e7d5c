"""End to end: the control loop picks the engine's --max-num-batched-tokens for the traffic it
sees and rolls the pods to it on the real apiserver.

One model with spec.batching.maxNumBatchedTokens unset (so the pods start on vLLM's default for
an H100, 8192) under long prompts: a chunk of 8192 tokens beside the decodes takes longer than the
50 ms ITL objective, so the capacity model finds a smaller budget that carries more per replica.
The loop records RollMaxNumBatchedTokens with its figures, status.desired carries the budget,
the Deployment's pods are replaced by ones started with it (a surge: never fewer Ready than
asked), and they serve. Policy durations run 5x faster than production; the testbed's compression
scales the latency objectives too, so the spec states 5x the 2 s / 50 ms the loop plans with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from conftest import fast_loop_env, start_operator, stop_operator
from engine_load import EngineLoad
from support import eventually, kubectl, scratch_namespace
from thrifty.reconcile.status import engine_max_num_batched_tokens
from thrifty.testbed.cluster import Testbed

MODEL = """
apiVersion: thrifty.dev/v1alpha1
kind: InferenceModel
metadata: {name: rag}
spec:
  model: {source: hf://meta-llama/Llama-3.1-8B-Instruct, servedName: rag, maxModelLen: 8192}
  batching: {maxNumSeqs: 64}
  resources: {gpu: {product: NVIDIA-H100-80GB-HBM3, count: 1}}
  scaling:
    replicas: {min: 1, max: 4}
    slo: {ttftP95: 10s, itlP95: 250ms}
    tuneMaxNumSeqs: {min: 8, max: 64}
"""


def _model(testbed: Testbed, namespace: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(kubectl(testbed, "get", "im", "rag", "-n", namespace, "-o", "json"))
    return body


def _rolls(testbed: Testbed, namespace: str) -> list[dict[str, Any]]:
    decisions = (_model(testbed, namespace).get("status") or {}).get("decisions") or []
    return [d for d in decisions if d["action"] == "RollMaxNumBatchedTokens"]


def _rolled_out(apps: Any, namespace: str, tokens: int) -> bool:
    deployment = apps.read_namespaced_deployment("rag", namespace).to_dict()
    status = deployment["status"]
    replicas = deployment["spec"]["replicas"]
    return (
        engine_max_num_batched_tokens(deployment) == tokens  # the client's dict keeps spec.template's shape
        and (status.get("updated_replicas") or 0) == replicas
        and (status.get("ready_replicas") or 0) == replicas
        and (status.get("replicas") or 0) == replicas
    )


@pytest.mark.timeout(720)
def test_the_loop_rolls_the_pods_to_the_token_budget_with_the_most_capacity(
    testbed: Testbed, thrifty_crds: None, core: Any, api_client: Any, tmp_path: Path
) -> None:
    env = fast_loop_env(testbed, period_s=5, time_scale=0.2)
    apps = client.AppsV1Api(api_client)
    with scratch_namespace(core, "budget", wait_for_pods=True) as namespace:
        running = start_operator(
            testbed, tmp_path / "operator.log", namespaces="budget-*", port=18086, extra_env=env
        )
        try:
            body = yaml.safe_load(MODEL)
            body["metadata"]["namespace"] = namespace
            kubectl(testbed, "apply", "-f", "-", stdin=yaml.safe_dump(body))
            eventually(
                lambda: any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in (_model(testbed, namespace).get("status") or {}).get("conditions") or []
                ),
                what="rag Ready",
            )
            deployment = apps.read_namespaced_deployment("rag", namespace).to_dict()
            args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
            assert "--max-num-batched-tokens" not in args  # vLLM's default until the loop knows the mix

            load = EngineLoad(
                client.DiscoveryV1Api(api_client),
                namespace,
                "rag",
                workers=16,
                seconds=480,
                prompt_tokens=3500,
                max_tokens=120,
                distinct_prompts=True,
            )
            with load:
                try:
                    eventually(
                        lambda: _rolls(testbed, namespace),
                        timeout=240,
                        interval=5,
                        what="a token-budget roll",
                    )
                except AssertionError:
                    status = _model(testbed, namespace).get("status") or {}
                    print("decisions:", json.dumps(status.get("decisions"), indent=1))
                    print("capacity:", status.get("capacity"), "desired:", status.get("desired"))
                    raise
                roll = _rolls(testbed, namespace)[0]
                tokens = int(roll["to"])
                eventually(
                    lambda: _rolled_out(apps, namespace, tokens),
                    timeout=240,
                    interval=5,
                    what="the roll finished",
                )
                desired = _model(testbed, namespace)["status"]["desired"]
                served = load.completed
                eventually(lambda: load.completed > served, timeout=90, what="the new pods serving")
        finally:
            stop_operator(running)

    print(f"roll: {roll}")
    assert roll["from"] == 8192
    assert tokens < 8192
    assert "tokens per step a replica sustains" in roll["reason"]
    assert "against" in roll["reason"]
    assert "with 8192" in roll["reason"]
    assert desired["engineMaxNumBatchedTokens"] == tokens
