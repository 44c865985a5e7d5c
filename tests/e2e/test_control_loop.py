"""End to end: the control loop on the testbed, with twins, Prometheus and real load.

Under load the loop scales out and moves the effective cap; an operator restart mid-run changes no
replica count; without load it scales back in; with Prometheus stopped it reports
MetricsAvailable=False and never scales down. Policy durations run 10x faster than production
(THRIFTY_CONTROL_TIME_SCALE=0.1) so the scenario fits in a few minutes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from conftest import OperatorProcess, fast_loop_env, start_operator, stop_operator
from engine_load import EngineLoad
from support import eventually, kubectl, scratch_namespace
from thrifty.testbed.cluster import Testbed

MODEL = """
apiVersion: thrifty.dev/v1alpha1
kind: InferenceModel
metadata: {name: chat}
spec:
  model: {source: hf://meta-llama/Llama-3.1-8B-Instruct, servedName: chat, maxModelLen: 4096}
  batching: {maxNumSeqs: 16, maxNumBatchedTokens: 4096}
  resources: {gpu: {product: NVIDIA-H100-80GB-HBM3, count: 1}}
  scaling:
    replicas: {min: 1, max: 4}
    slo: {ttftP95: 2s, itlP95: 50ms}
    tuneMaxNumSeqs: {min: 8, max: 64}
"""


@pytest.fixture
def namespace(core: Any) -> Iterator[str]:
    with scratch_namespace(core, "scale") as name:
        yield name


def model_status(testbed: Testbed, namespace: str) -> dict[str, Any]:
    body = json.loads(kubectl(testbed, "get", "im", "chat", "-n", namespace, "-o", "json"))
    status: dict[str, Any] = body.get("status") or {}
    return status


def condition(status: dict[str, Any], kind: str) -> str | None:
    return next((c["status"] for c in status.get("conditions", []) if c["type"] == kind), None)


def deployment_replicas(apps: Any, namespace: str) -> int:
    return int(apps.read_namespaced_deployment("chat", namespace).spec.replicas)


@pytest.mark.timeout(720)
def test_loop_scales_out_under_load_holds_across_restart_and_without_metrics_and_scales_in(
    testbed: Testbed, thrifty_crds: None, api_client: Any, apps: Any, namespace: str, tmp_path: Path
) -> None:
    env = fast_loop_env(testbed, period_s=2, time_scale=0.1)

    def operator(log: str) -> OperatorProcess:
        return start_operator(testbed, tmp_path / log, namespaces=namespace, port=18082, extra_env=env)

    running = operator("first.log")
    try:
        body = yaml.safe_load(MODEL)
        body["metadata"]["namespace"] = namespace
        kubectl(testbed, "apply", "-f", "-", stdin=yaml.safe_dump(body))
        eventually(lambda: condition(model_status(testbed, namespace), "Ready") == "True", what="model Ready")

        discovery = client.DiscoveryV1Api(api_client)
        with EngineLoad(discovery, namespace, "chat", workers=48, seconds=240):
            eventually(
                lambda: deployment_replicas(apps, namespace) > 1,
                timeout=150,
                interval=1,
                what="a scale-out under load",
            )
            # Restart the operator mid-run: the replica count must not move because of it.
            before = deployment_replicas(apps, namespace)
            stop_operator(running)
            running = operator("second.log")
            assert deployment_replicas(apps, namespace) == before
            time.sleep(5)
            assert deployment_replicas(apps, namespace) >= before
        # New replicas report after their first scrapes; until then the loop holds and says so.
        eventually(
            lambda: condition(model_status(testbed, namespace), "MetricsAvailable") == "True",
            timeout=60,
            interval=1,
            what="MetricsAvailable=True with every replica scraped",
        )
        status = model_status(testbed, namespace)
        actions = {d["action"] for d in status.get("decisions", [])}
        assert "ScaleUp" in actions
        assert 1 <= deployment_replicas(apps, namespace) <= 4
        assert status["maxNumSeqs"]["effective"] <= status["maxNumSeqs"]["engine"]

        # Prometheus gone: the loop says so and holds; nothing scales down on absent data.
        held = deployment_replicas(apps, namespace)
        testbed.stop_prometheus()
        try:
            eventually(
                lambda: condition(model_status(testbed, namespace), "MetricsAvailable") == "False",
                timeout=60,
                interval=1,
                what="MetricsAvailable=False",
            )
            time.sleep(10)
            assert deployment_replicas(apps, namespace) == held
        finally:
            testbed.start_prometheus()

        # Idle: back in, within bounds.
        eventually(
            lambda: deployment_replicas(apps, namespace) < held,
            timeout=240,
            interval=2,
            what="a scale-in when idle",
        )
        assert "ScaleDown" in {d["action"] for d in model_status(testbed, namespace).get("decisions", [])}
    finally:
        stop_operator(running)
