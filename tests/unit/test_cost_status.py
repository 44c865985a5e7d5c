"""Cost in status and metrics (thrifty.reconcile.cost): which pods count, when status is written,
what survives a restart, and the price per token from the control loop's window."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from thrifty.api import InferenceModel
from thrifty.control import MetricsWindow, ReplicaSample
from thrifty.reconcile import cost

T0 = datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC)
SELECTOR = "thrifty.dev/model=chat,thrifty.dev/role=engine"


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def pod(phase: str, gpus: int = 4, *, ready: bool = False) -> dict[str, Any]:
    return {
        "spec": {"containers": [{"resources": {"limits": {"nvidia.com/gpu": str(gpus), "cpu": "8"}}}]},
        "status": {"phase": phase, "conditions": [{"type": "Ready", "status": str(ready)}]},
    }


class Cluster:
    """The pods `objects.list_objects` answers with, and the selectors it was asked for."""

    def __init__(self) -> None:
        self.pods: list[dict[str, Any]] = []
        self.asked: list[str] = []

    def list_objects(self, api: Any, api_version: str, kind: str, **kwargs: Any) -> list[dict[str, Any]]:
        assert (api_version, kind) == ("v1", "Pod")
        self.asked.append(kwargs["label_selector"])
        return self.pods


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    fake = Cluster()
    monkeypatch.setattr(cost.objects, "list_objects", fake.list_objects)
    yield fake
    cost._accounts.clear()


@pytest.fixture
def namespace() -> str:
    return f"ns-{uuid.uuid4().hex[:8]}"


def body(namespace: str, status: dict[str, Any] | None = None, *, uid: str = "uid-1") -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": "chat", "uid": uid}, "status": status or {}}


def settled(replicas: int = 2) -> dict[str, Any]:
    """The status the reconcile computes for a converged model, before cost."""
    return {"replicas": replicas, "readyReplicas": replicas, "selector": SELECTOR}


def counter(namespace: str) -> float:
    value = REGISTRY.get_sample_value(
        "thrifty_model_gpu_hours_total", {"namespace": namespace, "model": "chat"}
    )
    return value or 0.0


def reconcile(cluster: Cluster, stored: dict[str, Any], namespace: str, seconds: float) -> dict[str, Any]:
    """One reconcile's cost step on a model whose stored status is `stored`; returns the status to store."""
    return cost.account_gpu_hours(None, body(namespace, stored), {**stored, **settled()}, now=at(seconds))


def test_running_pods_hold_their_gpus_ready_or_loading_and_pending_pods_hold_none() -> None:
    pods = [
        pod("Running", 4, ready=True),
        pod("Running", 4, ready=False),
        pod("Pending", 4),
        pod("Succeeded", 4),
    ]

    assert cost.gpus_held(pods) == 8
    assert cost.pod_gpus({"spec": {"containers": [{"resources": {"requests": {"nvidia.com/gpu": 2}}}]}}) == 2
    assert cost.pod_gpus({"spec": {"containers": [{"name": "no-gpu"}]}}) == 0


def test_a_new_model_gets_a_zero_total_with_its_first_status(cluster: Cluster, namespace: str) -> None:
    status = reconcile(cluster, {}, namespace, 0)

    assert status["cost"] == {"gpuHours": 0.0, "accountedAt": "2027-01-01T00:00:00Z"}
    assert cluster.asked == [SELECTOR]


def test_a_converged_model_is_not_rewritten_per_resync_but_its_counter_moves(
    cluster: Cluster, namespace: str
) -> None:
    cluster.pods = [pod("Running", 4, ready=True), pod("Running", 4, ready=True)]
    stored = reconcile(cluster, {}, namespace, 0)

    for second in (60, 120, 240, 299):
        assert reconcile(cluster, stored, namespace, second) == stored, f"a write at {second}s"
    assert counter(namespace) == pytest.approx(8 * 299 / 3600)

    later = reconcile(cluster, stored, namespace, 300)
    assert later["cost"] == {"gpuHours": round(8 * 300 / 3600, 4), "accountedAt": "2027-01-01T00:05:00Z"}


def test_a_status_written_anyway_takes_the_fresh_total_along(cluster: Cluster, namespace: str) -> None:
    cluster.pods = [pod("Running", 2)]
    stored = reconcile(cluster, {}, namespace, 0)

    changed = cost.account_gpu_hours(
        None, body(namespace, stored), {**stored, **settled(), "readyReplicas": 0}, now=at(1800)
    )

    assert changed["cost"] == {"gpuHours": 1.0, "accountedAt": "2027-01-01T00:30:00Z"}


def test_a_model_without_pods_is_not_listed_and_its_total_stays_put(cluster: Cluster, namespace: str) -> None:
    stored = cost.account_gpu_hours(None, body(namespace), {**settled(0)}, now=at(0))
    again = cost.account_gpu_hours(None, body(namespace, stored), {**stored, **settled(0)}, now=at(86_400))

    assert cluster.asked == []
    assert again == stored


def test_a_restarted_operator_goes_on_from_status_and_charges_the_time_away(
    cluster: Cluster, namespace: str
) -> None:
    cluster.pods = [pod("Running", 4)]
    stored = reconcile(cluster, {}, namespace, 0)
    stored = reconcile(cluster, stored, namespace, 600)  # due: 4 GPUs x 10 min = 0.6667 GPU-h
    assert stored["cost"]["gpuHours"] == pytest.approx(0.6667)
    reconcile(cluster, stored, namespace, 800)  # counted in memory only, then the process stops

    cost._accounts.clear()
    restarted = reconcile(cluster, stored, namespace, 1500)  # 15 min after the stored mark: +1.0

    assert restarted["cost"] == {"gpuHours": pytest.approx(1.6667), "accountedAt": "2027-01-01T00:25:00Z"}


def test_a_model_created_again_under_the_same_name_starts_from_zero(cluster: Cluster, namespace: str) -> None:
    cluster.pods = [pod("Running", 4)]
    reconcile(cluster, {}, namespace, 0)
    reconcile(cluster, {}, namespace, 3600)

    new = cost.account_gpu_hours(None, body(namespace, uid="uid-2"), settled(), now=at(7200))

    assert new["cost"]["gpuHours"] == 0.0


def model(namespace: str, *, price: float | None = 2.5) -> InferenceModel:
    spec: dict[str, Any] = {
        "model": {"source": "hf://meta-llama/Llama-3.1-8B-Instruct"},
        "resources": {"gpu": {"product": "NVIDIA-H100-80GB-HBM3", "count": 4}},
        "scaling": {"replicas": {"min": 1, "max": 4}},
    }
    if price is not None:
        spec["cost"] = {"gpuHourlyUSD": price}
    return InferenceModel.model_validate(
        {
            "apiVersion": "thrifty.dev/v1alpha1",
            "kind": "InferenceModel",
            "metadata": {"namespace": namespace, "name": "chat", "uid": "uid-1"},
            "spec": spec,
        }
    )


def window(tokens_per_s: float) -> MetricsWindow:
    now = T0.timestamp()
    samples = tuple(
        ReplicaSample(pod=p, time=now - 15 * k, running=4, waiting=0, kv_cache_usage=0.2)
        for k in range(4)
        for p in ("chat-a", "chat-b")
    )
    tokens = tuple((now - 15 * k, tokens_per_s) for k in range(4))
    return MetricsWindow(start=now - 60, end=now, samples=samples, generated_tokens_per_s=tokens)


def gauge(namespace: str) -> float | None:
    labels = {"namespace": namespace, "model": "chat"}
    return REGISTRY.get_sample_value("thrifty_model_usd_per_million_tokens", labels)


def test_the_price_per_token_goes_to_status_and_the_gauge(cluster: Cluster, namespace: str) -> None:
    # 2 replicas x 4 GPUs x $2.5 = $20/h over 1000 tokens/s: $5.56 per million.
    status = cost.price_generated_tokens({}, {"replicas": 2}, model(namespace), window(1000))

    assert status["cost"] == {"usdPer1MTokens": 5.56}
    assert gauge(namespace) == 5.56


def test_a_small_wobble_in_the_price_per_token_writes_nothing(cluster: Cluster, namespace: str) -> None:
    before = {"replicas": 2, "cost": {"usdPer1MTokens": 5.56}}

    assert cost.price_generated_tokens(before, dict(before), model(namespace), window(1030)) == before
    assert gauge(namespace) == 5.39  # the gauge follows every step


def test_traffic_gone_removes_the_price_per_token_from_status_and_metrics(
    cluster: Cluster, namespace: str
) -> None:
    before = {"cost": {"gpuHours": 1.0, "usdPer1MTokens": 5.56}}
    cost.price_generated_tokens({}, {}, model(namespace), window(1000))

    status = cost.price_generated_tokens(before, dict(before), model(namespace), window(0))

    # JSON merge patch: null deletes the field.
    assert status["cost"]["usdPer1MTokens"] is None
    assert gauge(namespace) is None


def test_without_a_price_nothing_is_reported(cluster: Cluster, namespace: str) -> None:
    status = cost.price_generated_tokens({}, {}, model(namespace, price=None), window(1000))

    assert status == {}
    assert gauge(namespace) is None


def test_a_control_step_never_puts_an_older_total_back(cluster: Cluster, namespace: str) -> None:
    cluster.pods = [pod("Running", 4)]
    stored = reconcile(cluster, {}, namespace, 0)
    reconcile(cluster, stored, namespace, 900)  # the reconcile's total is now 1.0 GPU-h

    # A step that read the object before that reconcile wrote, and writes for another reason.
    step = cost.price_generated_tokens(
        stored, {**stored, "utilization": {"batch": 0.5}}, model(namespace), window(0)
    )

    assert step["cost"]["gpuHours"] == 1.0


def test_a_deleted_model_leaves_no_account_and_no_series(cluster: Cluster, namespace: str) -> None:
    cluster.pods = [pod("Running", 4)]
    reconcile(cluster, {}, namespace, 0)
    reconcile(cluster, {}, namespace, 60)
    cost.price_generated_tokens({}, {}, model(namespace), window(1000))

    cost.forget_model(namespace, "chat")

    assert not [key for key in cost._accounts if key[0] == namespace]
    assert counter(namespace) == 0.0
    assert gauge(namespace) is None
