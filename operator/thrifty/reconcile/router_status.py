"""Pure: the status an InferenceRouter should show, from its router Deployment and the ready
endpoints of its tiers. Like a model's status, a converged router recomputes to exactly the stored
status, so the reconcile writes nothing."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from thrifty.api import ConditionType
from thrifty.reconcile.status import Problem, condition, rollout


@dataclass(frozen=True)
class TierObservation:
    """One tier as the operator saw it."""

    name: str
    model: str
    ready_endpoints: int
    cap: int | None
    """The per-replica cap router.json gives the router (None when no configuration was rendered)."""
    cost: dict[str, Any] | None = None
    """The model's status.cost (gpuHours, usdPer1MTokens), shown per tier."""


def _tiers(previous: dict[str, Any], tiers: list[TierObservation]) -> list[dict[str, Any]]:
    # trafficShare comes from the router's metrics (the control loop writes it); keep it.
    shares = {t.get("name"): t.get("trafficShare") for t in previous.get("tiers") or []}
    entries = []
    for tier in tiers:
        entry: dict[str, Any] = {
            "name": tier.name,
            "model": tier.model,
            "readyEndpoints": tier.ready_endpoints,
        }
        if tier.cap is not None:
            entry["maxInFlightPerReplica"] = tier.cap
        for field in ("gpuHours", "usdPer1MTokens"):
            if (tier.cost or {}).get(field) is not None:
                entry[field] = (tier.cost or {})[field]
        share = shares.get(tier.name)
        if share is not None:
            entry["trafficShare"] = share
        entries.append(entry)
    return entries


def router_status(
    *,
    body: dict[str, Any],
    deployment: dict[str, Any] | None,
    tiers: list[TierObservation] | None,
    endpoint: str | None,
    problem: Problem | None,
    now: datetime.datetime,
) -> dict[str, Any]:
    previous_status: dict[str, Any] = dict(body.get("status") or {})
    previous = {c["type"]: c for c in previous_status.get("conditions") or [] if "type" in c}
    generation = body.get("metadata", {}).get("generation")
    desired, ready, updated, _, rolled_out = rollout(deployment)
    without_endpoints = [t for t in tiers or () if t.ready_endpoints == 0]

    if deployment is None:
        readiness = (False, "NoDeployment", "the router Deployment does not exist yet")
    elif ready == 0:
        readiness = (False, "RouterNotReady", f"0/{desired} router pods ready")
    elif without_endpoints:
        names = ", ".join(f"{t.name} ({t.model})" for t in without_endpoints)
        readiness = (False, "TierUnavailable", f"no ready endpoint in tier {names}")
    else:
        endpoints = ", ".join(f"{t.name} {t.ready_endpoints}" for t in tiers or ())
        readiness = (True, "Serving", f"{ready}/{desired} router pods ready; ready endpoints: {endpoints}")

    if deployment is not None and not rolled_out:
        progressing = (True, "RollingOut", f"{updated}/{desired} router pods updated, {ready} ready")
    else:
        progressing = (False, "Stable", "no rollout in progress")

    if problem is not None:
        degraded = (True, problem.reason, problem.message)
    else:
        degraded = (False, "AsExpected", "the spec is carried out as written")

    status = dict(previous_status)
    status.update(
        {
            "observedGeneration": generation,
            "conditions": [
                condition(previous, ConditionType.READY, *readiness, now=now, generation=generation),
                condition(previous, ConditionType.PROGRESSING, *progressing, now=now, generation=generation),
                condition(previous, ConditionType.DEGRADED, *degraded, now=now, generation=generation),
            ],
        }
    )
    if tiers is not None:  # None: the spec did not parse; the last observed tiers stay
        status["tiers"] = _tiers(previous_status, tiers)
    if endpoint is not None:
        status["endpoint"] = endpoint
    return status


SHARE_RESOLUTION = 0.01
"""Traffic shares move in status only by at least this much: the split is for people and
dashboards, and a write per control step for noise in the third decimal would be churn."""


def with_traffic_shares(status: dict[str, Any], shares: dict[str, float]) -> dict[str, Any]:
    """The status with each tier's trafficShare from the router's request counts; tiers that
    answered nothing get 0. Returns `status` itself when no share moved by SHARE_RESOLUTION."""
    tiers = [dict(t) for t in status.get("tiers") or []]
    moved = False
    for tier in tiers:
        share = round(shares.get(tier.get("name", ""), 0.0), 3)
        old = tier.get("trafficShare")
        if old is None or abs(float(old) - share) >= SHARE_RESOLUTION:
            tier["trafficShare"] = share
            moved = True
    return {**status, "tiers": tiers} if moved else status
