"""Pure: the status an InferenceModel should show, from what was observed of its Deployment.

Conditions keep their lastTransitionTime while their status does not change, so recomputing the
status of a converged model yields exactly the stored one, and the reconcile writes nothing.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from thrifty.api import ConditionType


@dataclass(frozen=True)
class Problem:
    """Why the spec cannot be carried out; becomes Degraded=True with this reason and message."""

    reason: str
    message: str


def timestamp(now: datetime.datetime) -> str:
    return now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(
    previous: dict[str, dict[str, Any]],
    kind: ConditionType,
    status: bool,
    reason: str,
    message: str,
    *,
    now: datetime.datetime,
    generation: int | None,
) -> dict[str, Any]:
    value = "True" if status else "False"
    before = previous.get(kind.value)
    changed = before is None or before.get("status") != value
    condition = {
        "type": kind.value,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": timestamp(now) if changed else before["lastTransitionTime"],  # type: ignore[index]
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition


def rollout(deployment: dict[str, Any] | None) -> tuple[int, int, int, int, bool]:
    """(desired, ready, updated, total replicas, rolled out) of a Deployment as last observed."""
    spec = (deployment or {}).get("spec", {})
    observed = (deployment or {}).get("status", {})
    desired = int(spec.get("replicas", 0) or 0)
    ready = int(observed.get("readyReplicas", 0) or 0)
    updated = int(observed.get("updatedReplicas", 0) or 0)
    total = int(observed.get("replicas", 0) or 0)
    rolled_out = (
        deployment is not None
        and observed.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
        and updated == desired
        and total == desired
    )
    return desired, ready, updated, total, rolled_out


def _engine_int_flag(deployment: dict[str, Any] | None, flag: str) -> int | None:
    """An integer flag the Deployment's pods run with, read back from its container args."""
    if not deployment:
        return None
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        args = container.get("args") or []
        for index, arg in enumerate(args):
            if arg == flag and index + 1 < len(args):
                return int(args[index + 1])
            if arg.startswith(flag + "="):
                return int(arg.split("=", 1)[1])
    return None


def engine_max_num_seqs(deployment: dict[str, Any] | None) -> int | None:
    """The --max-num-seqs the Deployment's pods run with."""
    return _engine_int_flag(deployment, "--max-num-seqs")


def engine_max_num_batched_tokens(deployment: dict[str, Any] | None) -> int | None:
    """The --max-num-batched-tokens the Deployment's pods run with; None without the flag."""
    return _engine_int_flag(deployment, "--max-num-batched-tokens")


def model_status(
    *,
    body: dict[str, Any],
    deployment: dict[str, Any] | None,
    selector: str,
    problem: Problem | None,
    now: datetime.datetime,
) -> dict[str, Any]:
    """The whole status to store. Fields the control loop owns (utilization, decisions, cost,
    the effective cap, MetricsAvailable) are carried over untouched."""
    previous_status: dict[str, Any] = dict(body.get("status") or {})
    previous = {c["type"]: c for c in previous_status.get("conditions") or [] if "type" in c}
    generation = body.get("metadata", {}).get("generation")
    desired, ready, updated, total, rolled_out = rollout(deployment)

    if deployment is None:
        is_ready, ready_reason, ready_message = (
            False,
            "NoDeployment",
            "the vLLM Deployment does not exist yet",
        )
    elif desired == 0:
        is_ready, ready_reason, ready_message = (
            False,
            "ScaledToZero",
            "replicas is 0: with spec.scaling.replicas.min 0, a request through an InferenceRouter wakes it",
        )
    elif ready >= desired and rolled_out:
        is_ready, ready_reason, ready_message = True, "AllReplicasReady", f"{ready}/{desired} replicas ready"
    else:
        is_ready, ready_reason, ready_message = False, "ReplicasNotReady", f"{ready}/{desired} replicas ready"

    if deployment is not None and not rolled_out:
        progressing = (True, "RollingOut", f"{updated}/{desired} replicas updated, {ready} ready")
    else:
        progressing = (False, "Stable", "no rollout in progress")

    if problem is not None:
        degraded = (True, problem.reason, problem.message)
    else:
        degraded = (False, "AsExpected", "the spec is carried out as written")

    conditions = [
        condition(
            previous,
            ConditionType.READY,
            is_ready,
            ready_reason,
            ready_message,
            now=now,
            generation=generation,
        ),
        condition(previous, ConditionType.PROGRESSING, *progressing, now=now, generation=generation),
        condition(previous, ConditionType.DEGRADED, *degraded, now=now, generation=generation),
    ]
    if ConditionType.METRICS_AVAILABLE.value in previous:
        conditions.append(previous[ConditionType.METRICS_AVAILABLE.value])

    status = dict(previous_status)
    status.update(
        {
            "observedGeneration": generation,
            "conditions": conditions,
            "replicas": total,
            "readyReplicas": ready,
            "selector": selector,
        }
    )
    engine = engine_max_num_seqs(deployment)
    if engine is not None:
        max_num_seqs = dict(previous_status.get("maxNumSeqs") or {})
        max_num_seqs["engine"] = engine
        effective = max_num_seqs.get("effective")
        max_num_seqs["effective"] = engine if effective is None else min(int(effective), engine)
        status["maxNumSeqs"] = max_num_seqs
    return status


def condition_transitions(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """Conditions whose status or reason changed: each becomes an Event."""
    old = {c["type"]: c for c in before.get("conditions") or [] if "type" in c}
    return [
        c
        for c in after.get("conditions") or []
        if c["type"] not in old
        or (old[c["type"]].get("status"), old[c["type"]].get("reason")) != (c["status"], c["reason"])
    ]
