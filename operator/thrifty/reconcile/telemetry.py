"""The operator's own Prometheus metrics: what it reconciled, what it decided, what it could not read.

Names are stable API: the Grafana dashboards in charts/thrifty query them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable
from typing import Any

from kubernetes import client
from prometheus_client import Counter, Gauge

from thrifty.api import ConditionType, InferenceModel
from thrifty.control import Action, Decision
from thrifty.k8s.events import record_event

RECONCILES = Counter(
    "thrifty_reconcile",
    "Reconciles of Thrifty objects, by kind and result (success, degraded, error).",
    ["kind", "result"],
)
DECISIONS = Counter(
    "thrifty_decisions",
    "Control-loop decisions that changed something, by model and action.",
    ["namespace", "model", "action"],
)
METRICS_QUERY_ERRORS = Counter(
    "thrifty_metrics_query_errors",
    "Prometheus queries of the control loop that failed or returned stale data.",
    ["namespace", "model"],
)
GPU_HOURS = Counter(
    "thrifty_model_gpu_hours",
    "GPU-hours held by each model's Running pods (Pending pods hold none), as this operator process "
    "accounted them; status.cost.gpuHours keeps the total since the model was created.",
    ["namespace", "model"],
)
USD_PER_MILLION_TOKENS = Gauge(
    "thrifty_model_usd_per_million_tokens",
    "US dollars per million generated tokens of each model over the control loop's window: "
    "spec.cost.gpuHourlyUSD x GPU-hours of its serving replicas / tokens generated; absent without "
    "a price or traffic.",
    ["namespace", "model"],
)
EFFECTIVE_CAP = Gauge(
    "thrifty_model_effective_max_num_seqs",
    "The per-replica concurrency cap the router enforces for each model.",
    ["namespace", "model"],
)
ENGINE_MAX_NUM_SEQS = Gauge(
    "thrifty_model_engine_max_num_seqs",
    "The --max-num-seqs flag each model's engines run with.",
    ["namespace", "model"],
)
REPLICAS = Gauge(
    "thrifty_model_replicas",
    "Replicas of each model decided by the control loop.",
    ["namespace", "model"],
)


def start_model_series(*, namespace: str, model: str) -> None:
    """Create a model's counters at zero, before anything happens to them.

    A counter child appears only at its first increment otherwise, and `increase()` over a series
    that starts at 1 misses that first event; dashboards would also show no series at all for a
    model that never failed a query or never scaled. Hold and Steady are never counted."""
    GPU_HOURS.labels(namespace=namespace, model=model)
    METRICS_QUERY_ERRORS.labels(namespace=namespace, model=model)
    for action in Action:
        if action not in (Action.HOLD, Action.STEADY):
            DECISIONS.labels(namespace=namespace, model=model, action=action.value)


def report_decision(
    api: client.ApiClient, body: dict[str, Any], model: InferenceModel, decision: Decision
) -> None:
    """A control-loop decision, once stored: the gauges, a counter and an Event per change, and a
    Warning when the metrics just went missing. `body` is the model as read before the store."""
    labels = {"namespace": model.namespace, "model": model.name}
    start_model_series(**labels)
    EFFECTIVE_CAP.labels(**labels).set(decision.effective_cap)
    ENGINE_MAX_NUM_SEQS.labels(**labels).set(decision.engine_max_num_seqs)
    REPLICAS.labels(**labels).set(decision.replicas)
    for change in decision.changes:
        DECISIONS.labels(action=change.action.value, **labels).inc()
        record_event(
            api,
            body,
            reason=change.action.value,
            message=f"{change.before} -> {change.after}: {change.reason}",
        )
    conditions = (body.get("status") or {}).get("conditions") or []
    previous = next((c for c in conditions if c.get("type") == ConditionType.METRICS_AVAILABLE.value), None)
    if previous is not None and previous.get("status") == "True" and not decision.metrics_available:
        record_event(api, body, reason="MetricsUnavailable", message=decision.reason, event_type="Warning")


TIER_INFO = Gauge(
    "thrifty_tier_info",
    "1 for each tier of each InferenceRouter, naming the InferenceModel behind it: joins the router's "
    "per-tier series with the per-model cost series (on namespace, model).",
    ["namespace", "router", "tier", "model"],
)
_router_tiers: dict[tuple[str, str], set[tuple[str, str]]] = {}
_router_tiers_lock = threading.Lock()


def record_router_tiers(*, namespace: str, router: str, tiers: Iterable[tuple[str, str]]) -> None:
    """Publish a router's (tier, model) pairs as they are now, dropping pairs it no longer has."""
    current = set(tiers)
    with _router_tiers_lock:
        gone = _router_tiers.get((namespace, router), set()) - current
        _router_tiers[(namespace, router)] = current
        for tier, model in gone:
            with contextlib.suppress(KeyError):  # already removed
                TIER_INFO.remove(namespace, router, tier, model)
        for tier, model in current:
            TIER_INFO.labels(namespace=namespace, router=router, tier=tier, model=model).set(1)


def forget_router_tiers(*, namespace: str, router: str) -> None:
    """Drop a deleted router's tiers."""
    record_router_tiers(namespace=namespace, router=router, tiers=())
    with _router_tiers_lock:
        _router_tiers.pop((namespace, router), None)
