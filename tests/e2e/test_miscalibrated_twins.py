"""End to end: the control loop corrects its capacity model online when the engines run slower
than the calibration it plans with.

Two copies of one model under the same load, in two namespaces: one on twins that match the
calibration, one on twins whose every engine step takes 1.3x the calibrated time (the testbed's
namespace annotation). The loop sees only Prometheus; after a few minutes it reports the slow
engine's step time about 1.3x the other's in status.capacity.stepTimeScale, and a capacity per
replica lower by about as much. Policy durations run 5x faster than production, so the
scale-in delay and start-up fit in the scenario; the correction itself needs whole minutes of
mean inter-token gaps, as in production.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from conftest import fast_loop_env, start_operator, stop_operator
from engine_load import EngineLoad
from support import eventually, kubectl, scratch_namespace
from thrifty.testbed.cluster import Testbed
from thrifty.testbed.twins import STEP_TIME_ANNOTATION

MODEL = """
apiVersion: thrifty.dev/v1alpha1
kind: InferenceModel
metadata: {name: chat}
spec:
  model: {source: hf://meta-llama/Llama-3.1-8B-Instruct, servedName: chat, maxModelLen: 4096}
  batching: {maxNumSeqs: 64, maxNumBatchedTokens: 4096}
  resources: {gpu: {product: NVIDIA-H100-80GB-HBM3, count: 1}}
  scaling:
    replicas: {min: 1, max: 3}
    slo: {ttftP95: 2s, itlP95: 50ms}
"""
SLOWER = 1.3


@pytest.fixture
def namespaces(core: Any) -> Iterator[tuple[str, str]]:
    with (
        scratch_namespace(core, "calib", wait_for_pods=True) as nominal,
        scratch_namespace(core, "calib", wait_for_pods=True) as slow,
    ):
        core.patch_namespace(slow, {"metadata": {"annotations": {STEP_TIME_ANNOTATION: str(SLOWER)}}})
        yield nominal, slow


def capacity(testbed: Testbed, namespace: str) -> dict[str, Any]:
    body = json.loads(kubectl(testbed, "get", "im", "chat", "-n", namespace, "-o", "json"))
    found: dict[str, Any] = (body.get("status") or {}).get("capacity") or {}
    return found


def ready(testbed: Testbed, namespace: str) -> bool:
    body = json.loads(kubectl(testbed, "get", "im", "chat", "-n", namespace, "-o", "json"))
    conditions = (body.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


@pytest.mark.timeout(720)
def test_the_loop_finds_engines_slower_than_the_calibration(
    testbed: Testbed, thrifty_crds: None, api_client: Any, namespaces: tuple[str, str], tmp_path: Path
) -> None:
    nominal, slow = namespaces
    env = fast_loop_env(testbed, period_s=5, time_scale=0.2)
    running = start_operator(
        testbed, tmp_path / "operator.log", namespaces="calib-*", port=18083, extra_env=env
    )
    try:
        for namespace in namespaces:
            body = yaml.safe_load(MODEL)
            body["metadata"]["namespace"] = namespace
            kubectl(testbed, "apply", "-f", "-", stdin=yaml.safe_dump(body))
        for namespace in namespaces:
            eventually(lambda n=namespace: ready(testbed, n), what=f"chat Ready in {namespace}")

        discovery = client.DiscoveryV1Api(api_client)
        with ExitStack() as loads:
            for namespace in namespaces:
                loads.enter_context(
                    EngineLoad(
                        discovery,
                        namespace,
                        "chat",
                        workers=12,
                        seconds=420,
                        prompt_tokens=800,
                        max_tokens=150,
                    )
                )

            eventually(
                lambda: capacity(testbed, slow).get("stepTimeScale", 1.0) != 1.0,
                timeout=400,
                interval=5,
                what="the loop's first step-time correction",
            )
            # The first fit rests on three minutes; the fit spans ten: let it take a few more.
            time.sleep(60)
            fast_seen, slow_seen = capacity(testbed, nominal), capacity(testbed, slow)
    finally:
        stop_operator(running)

    ratio = slow_seen["stepTimeScale"] / fast_seen["stepTimeScale"]
    print(f"calibrated twins: {fast_seen}; twins {SLOWER}x slower: {slow_seen}; ratio {ratio:.2f}")
    assert 1.15 <= ratio <= 1.5, (fast_seen, slow_seen)
    assert slow_seen["requestsPerSecond"] < 0.9 * fast_seen["requestsPerSecond"], (fast_seen, slow_seen)
    assert slow_seen["plannedRequestsPerSecond"] < slow_seen["requestsPerSecond"]
