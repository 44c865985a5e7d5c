"""One control-loop step against the real apiserver: the loop decides, the model's one reconcile
records the decision in status.desired and carries it out, and a reconcile working from an older
copy of the model never puts the previous replica count back. The metrics window is an input
the test writes (what Prometheus would answer); everything Kubernetes is real."""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import yaml

from support import eventually, kubectl, scratch_namespace
from thrifty.api import InferenceModel
from thrifty.control import Action, LatencySample, MetricsWindow, ReplicaSample
from thrifty.k8s import objects
from thrifty.reconcile.model import reconcile_model
from thrifty.reconcile.scaling import control_step
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
"""


@pytest.fixture
def namespace(core: Any) -> Iterator[str]:
    with scratch_namespace(core, "step", wait_for_pods=True) as name:
        yield name


def overloaded(
    model: InferenceModel, ready: list[str], now: float, tiers: Sequence[tuple[str, str]]
) -> MetricsWindow:
    """Every replica full, a queue behind each, TTFT p95 over its SLO, for the last 30 minutes."""
    pods = ready or ["chat-0"]
    times = [now - 15.0 * k for k in range(120)][::-1]
    samples = tuple(
        ReplicaSample(pod=pod, time=t, running=16, waiting=24, kv_cache_usage=0.5, finished_per_s=4.0)
        for t in times
        for pod in pods
    )
    latency = tuple(LatencySample(time=t, ttft_p95_s=6.0, itl_p95_s=0.03, itl_slow_share=0.01) for t in times)
    return MetricsWindow(start=times[0], end=now, samples=samples, latency=latency)


def read(api_client: Any, namespace: str) -> dict[str, Any]:
    body = objects.read(api_client, "thrifty.dev/v1alpha1", "InferenceModel", "chat", namespace=namespace)
    assert body is not None
    return body


def deployment_replicas(apps: Any, namespace: str) -> int:
    return int(apps.read_namespaced_deployment("chat", namespace).spec.replicas)


def test_the_loops_decision_goes_through_the_one_reconcile_and_is_never_put_back(
    testbed: Testbed, thrifty_crds: None, api_client: Any, apps: Any, namespace: str
) -> None:
    body = yaml.safe_load(MODEL)
    body["metadata"]["namespace"] = namespace
    kubectl(testbed, "apply", "-f", "-", stdin=yaml.safe_dump(body))
    reconcile_model(api_client, read(api_client, namespace))
    assert deployment_replicas(apps, namespace) == 1
    before_step = read(api_client, namespace)  # what a watch event queued now would carry

    decision = control_step(
        api_client, overloaded, read(api_client, namespace), now=datetime.datetime.now(datetime.UTC)
    )

    assert decision is not None
    assert decision.action is Action.SCALE_UP, decision.reason
    assert deployment_replicas(apps, namespace) == decision.replicas > 1
    status = read(api_client, namespace)["status"]
    assert status["desired"] == {"replicas": decision.replicas, "engineMaxNumSeqs": 16}
    assert status["decisions"][0]["action"] == "ScaleUp"
    assert status["decisions"][0]["to"] == decision.replicas
    assert {c["type"]: c["status"] for c in status["conditions"]}["MetricsAvailable"] == "True"

    # A reconcile from the copy read before the step: the decision stands.
    reconcile_model(api_client, before_step)
    assert deployment_replicas(apps, namespace) == decision.replicas
    assert read(api_client, namespace)["status"]["desired"]["replicas"] == decision.replicas

    # Narrowing the bounds is carried out by the reconcile at once, and recorded.
    kubectl(
        testbed,
        "patch",
        "im",
        "chat",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec": {"scaling": {"replicas": {"min": 1, "max": 2}}}}',
    )
    reconcile_model(api_client, read(api_client, namespace))
    eventually(lambda: deployment_replicas(apps, namespace) == 2, what="the new bound carried out")
    assert read(api_client, namespace)["status"]["desired"]["replicas"] == 2
