"""End to end: a model with `replicas.min: 0` gives up its last replica when idle, and a request
through its InferenceRouter brings it back with nothing lost.

Every part is real except the GPU: the operator and its control loop (policy durations 5x faster
than production, so `idleDelay: 1m` is 12 s), Prometheus scraping the twins, the router process
with its pod's ServiceAccount (it stamps the model's wake annotation), and a twin that loads for
its modelled cold start. Shows: a new model with min 0 starting at zero; a burst of requests sent
while nothing runs all answered 200 once the woken replica serves, through one wake; no flapping
back to zero while requests keep coming; the scale to zero after the idle delay; and a second
wake from there.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from conftest import fast_loop_env, start_operator, stop_operator
from router_client import chat, metric, user
from support import condition, delete_namespace, eventually, kubectl
from thrifty.testbed.cluster import Testbed

REPO = Path(__file__).resolve().parents[2]
ROUTER_CLUSTER_ROLE = REPO / "manifests" / "install" / "clusterrole-thrifty-router.yaml"

MODEL = """
apiVersion: thrifty.dev/v1alpha1
kind: InferenceModel
metadata: {name: chat}
spec:
  model: {source: hf://meta-llama/Llama-3.1-8B-Instruct, servedName: chat, maxModelLen: 4096}
  batching: {maxNumSeqs: 32}
  resources: {gpu: {product: NVIDIA-H100-80GB-HBM3, count: 1}}
  scaling:
    replicas: {min: 0, max: 2, idleDelay: 1m}
    slo: {ttftP95: 2s, itlP95: 50ms}
"""
ROUTER = """
apiVersion: thrifty.dev/v1alpha1
kind: InferenceRouter
metadata: {name: front}
spec:
  tiers:
    - {name: only, model: chat}
  admission: {queueLimit: 100, queueTimeout: 10s, coldStartTimeout: 3m}
"""


@pytest.fixture
def namespace(core: Any) -> Iterator[str]:
    name = f"wake-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name}})
    core.create_namespaced_secret(
        name, {"metadata": {"name": "hf-token"}, "stringData": {"token": "hf_test"}}
    )
    yield name
    delete_namespace(core, name)


def live_model(testbed: Testbed, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(kubectl(testbed, "get", "im", "chat", "-n", namespace, "-o", "json"))
    return found


def wake_with_a_burst(address: str) -> list[int]:
    """Six requests at once to a model at zero: each is held through the cold start."""
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=6) as pool:
        replies = list(pool.map(lambda i: chat(address, user(f"Question {i}")), range(6)))
    print(
        f"six requests at zero replicas: {[r.status for r in replies]} after {time.monotonic() - started:.1f} s"
    )
    return [reply.status for reply in replies]


def replicas(apps: Any, namespace: str) -> int:
    return int(apps.read_namespaced_deployment("chat", namespace).spec.replicas or 0)


def router_address(core: Any, namespace: str) -> str:
    pod = eventually(
        lambda: next(
            (
                p
                for p in core.list_namespaced_pod(namespace, label_selector="thrifty.dev/router=front").items
                if p.status.pod_ip
                and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
            ),
            None,
        ),
        timeout=120,
        what="the router pod Ready",
    )
    return f"{pod.status.pod_ip}:8000"


@pytest.mark.timeout(600)
def test_an_idle_model_goes_to_zero_and_a_request_through_the_router_wakes_it(
    testbed: Testbed, thrifty_crds: None, api_client: Any, core: Any, namespace: str, tmp_path: Path
) -> None:
    apps = client.AppsV1Api(api_client)
    kubectl(testbed, "apply", "--server-side", "-f", str(ROUTER_CLUSTER_ROLE))
    env = fast_loop_env(testbed, period_s=5, time_scale=0.2)
    running = start_operator(
        testbed, tmp_path / "operator.log", namespaces="wake-*", port=18084, extra_env=env
    )
    try:
        for text in (MODEL, ROUTER):
            body = yaml.safe_load(text)
            body["metadata"]["namespace"] = namespace
            kubectl(testbed, "apply", "-f", "-", stdin=yaml.safe_dump(body))
        address = router_address(core, namespace)
        # A new model with min 0 starts at zero: nothing runs until a request asks for it.
        assert replicas(apps, namespace) == 0

        first = wake_with_a_burst(address)
        assert first == [200] * 6
        assert metric(address, "thrifty_router_wakes_total", tier="only") == 1
        assert replicas(apps, namespace) >= 1
        # The router answers as soon as the replica serves; status catches up at the next reconcile.
        eventually(
            lambda: (condition(live_model(testbed, namespace), "Ready") or {}).get("status") == "True",
            timeout=30,
            what="the woken model's Ready condition",
        )

        # Requests a few seconds apart, well inside the idle delay: no flap back to zero.
        for _ in range(5):
            assert chat(address, user("Still there?")).status == 200
            assert replicas(apps, namespace) >= 1, "back to zero while requests kept coming"
            time.sleep(2)

        # Idle for the delay (12 s here): the loop gives up the last replica, and says why.
        eventually(lambda: replicas(apps, namespace) == 0, timeout=180, interval=2, what="the scale to zero")
        status = live_model(testbed, namespace)["status"]
        assert status["decisions"][0]["action"] == "ScaleDown", status["decisions"][0]
        assert "no request" in status["decisions"][0]["reason"], status["decisions"][0]
        assert status.get("lastRequestTime"), "the idle rule reads the last request's time"
        eventually(
            lambda: metric(address, "thrifty_router_ready_replicas", tier="only") == 0,
            timeout=60,
            what="the router to see no replica",
        )

        # And back: a second burst at zero, a second wake, nothing lost.
        second = wake_with_a_burst(address)
        assert second == [200] * 6
        assert metric(address, "thrifty_router_wakes_total", tier="only") == 2
        assert replicas(apps, namespace) >= 1
    finally:
        stop_operator(running)
