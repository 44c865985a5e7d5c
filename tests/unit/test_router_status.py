"""The InferenceRouter's status, computed purely from what the operator observed."""

from __future__ import annotations

import datetime
from typing import Any

from thrifty.api import InferenceRouterStatus
from thrifty.reconcile.router_status import TierObservation, router_status, with_traffic_shares
from thrifty.reconcile.status import Problem

NOW = datetime.datetime(2026, 11, 27, 12, 0, tzinfo=datetime.UTC)
LATER = NOW + datetime.timedelta(minutes=5)
BODY = {"metadata": {"name": "assistant", "namespace": "models", "generation": 4}}


def deployment(*, desired: int = 1, ready: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"generation": 2},
        "spec": {"replicas": desired},
        "status": {
            "observedGeneration": 2,
            "replicas": desired,
            "updatedReplicas": desired,
            "readyReplicas": ready,
        },
    }


def tiers(small: int = 2, large: int = 1) -> list[TierObservation]:
    return [
        TierObservation(name="small", model="llama-8b", ready_endpoints=small, cap=48),
        TierObservation(name="large", model="llama-70b", ready_endpoints=large, cap=128),
    ]


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def compute(body: dict[str, Any] = BODY, **kwargs: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "deployment": deployment(),
        "tiers": tiers(),
        "endpoint": "http://assistant.models.svc:8000/v1",
        "problem": None,
        "now": NOW,
    }
    values.update(kwargs)
    return router_status(body=body, **values)


def test_a_serving_router_with_endpoints_in_every_tier_is_ready() -> None:
    status = compute()
    assert conditions(status) == {
        "Ready": ("True", "Serving"),
        "Progressing": ("False", "Stable"),
        "Degraded": ("False", "AsExpected"),
    }
    assert status["tiers"] == [
        {"name": "small", "model": "llama-8b", "readyEndpoints": 2, "maxInFlightPerReplica": 48},
        {"name": "large", "model": "llama-70b", "readyEndpoints": 1, "maxInFlightPerReplica": 128},
    ]
    assert status["observedGeneration"] == 4
    assert status["endpoint"] == "http://assistant.models.svc:8000/v1"
    InferenceRouterStatus.model_validate(status)  # the shape the CRD stores


def test_a_tier_without_ready_endpoints_is_named_in_ready() -> None:
    status = compute(tiers=tiers(small=0))
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "TierUnavailable")
    assert "small (llama-8b)" in ready["message"]


def test_no_router_pod_ready_means_not_ready() -> None:
    assert conditions(compute(deployment=deployment(ready=0)))["Ready"] == ("False", "RouterNotReady")
    assert conditions(compute(deployment=None))["Ready"] == ("False", "NoDeployment")


def test_a_problem_is_degraded_and_an_unparsed_spec_keeps_the_last_tiers() -> None:
    before = compute()
    body = {**BODY, "status": before}
    status = compute(body, tiers=None, problem=Problem("InvalidSpec", "spec.tiers: required"), now=LATER)
    assert conditions(status)["Degraded"] == ("True", "InvalidSpec")
    assert status["tiers"] == before["tiers"]


def test_a_converged_router_recomputes_to_the_stored_status() -> None:
    stored = compute()
    assert compute({**BODY, "status": stored}, now=LATER) == stored


def test_traffic_shares_are_kept_across_reconciles_and_written_only_when_they_move() -> None:
    stored = with_traffic_shares(compute(), {"small": 0.8, "large": 0.2})
    assert [t["trafficShare"] for t in stored["tiers"]] == [0.8, 0.2]
    assert compute({**BODY, "status": stored}, now=LATER)["tiers"] == stored["tiers"]
    assert with_traffic_shares(stored, {"small": 0.803, "large": 0.197}) is stored
    moved = with_traffic_shares(stored, {"small": 0.6, "large": 0.4})
    assert [t["trafficShare"] for t in moved["tiers"]] == [0.6, 0.4]
    silent = with_traffic_shares(stored, {"small": 1.0})
    assert [t["trafficShare"] for t in silent["tiers"]] == [1.0, 0.0]


def test_each_tier_shows_its_models_cost() -> None:
    observed = [
        TierObservation(
            name="small",
            model="llama-8b",
            ready_endpoints=2,
            cap=48,
            cost={"gpuHours": 3.5, "usdPer1MTokens": 0.42},
        ),
        TierObservation(name="large", model="llama-70b", ready_endpoints=1, cap=128, cost=None),
    ]
    small, large = compute(tiers=observed)["tiers"]
    assert (small["gpuHours"], small["usdPer1MTokens"]) == (3.5, 0.42)
    assert "gpuHours" not in large
    InferenceRouterStatus.model_validate(compute(tiers=observed))
