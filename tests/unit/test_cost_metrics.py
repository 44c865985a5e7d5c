"""The operator's series that the cost and operator dashboards need before anything happens:
per-model counters at zero, and the tier -> model join of each router."""

from __future__ import annotations

import uuid

from prometheus_client import REGISTRY

from thrifty.reconcile.telemetry import forget_router_tiers, record_router_tiers, start_model_series


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_a_models_counters_exist_at_zero_before_its_first_event() -> None:
    namespace = f"ns-{uuid.uuid4().hex[:8]}"

    start_model_series(namespace=namespace, model="chat")

    own = {"namespace": namespace, "model": "chat"}
    assert sample("thrifty_model_gpu_hours_total", **own) == 0.0
    assert sample("thrifty_metrics_query_errors_total", **own) == 0.0
    for action in ("ScaleUp", "ScaleDown", "RaiseMaxNumSeqs", "LowerMaxNumSeqs", "RollMaxNumSeqs"):
        assert sample("thrifty_decisions_total", action=action, **own) == 0.0
    # Holds and steady steps are not decisions that changed something: never counted.
    assert sample("thrifty_decisions_total", action="Hold", **own) is None


def test_a_routers_tiers_name_their_models_and_a_dropped_tier_disappears() -> None:
    namespace = f"ns-{uuid.uuid4().hex[:8]}"

    record_router_tiers(namespace=namespace, router="front", tiers=[("small", "qwen"), ("large", "llama")])
    record_router_tiers(namespace=namespace, router="front", tiers=[("small", "qwen-2")])

    def tier(name: str, model: str) -> float | None:
        return sample("thrifty_tier_info", namespace=namespace, router="front", tier=name, model=model)

    assert tier("small", "qwen-2") == 1.0
    assert tier("small", "qwen") is None
    assert tier("large", "llama") is None

    forget_router_tiers(namespace=namespace, router="front")
    assert tier("small", "qwen-2") is None
