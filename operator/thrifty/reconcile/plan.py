"""Pure: what one InferenceModel's children and status should be, from what was observed of it.

    plan = plan_model(body, observed, record)

`observed` is the model's Deployment and the GPU products the nodes offer; `record` is the control
loop's decision when the loop hands one in. The plan is the children to apply (none when the
spec cannot be carried out) and the whole status to store. The model's one reconcile reads,
plans and applies, under that model's lock; the control loop only decides and hands its decision
to it, so the Deployment has one writer and a count the loop just chose is never put back.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from thrifty.api import (
    GPU_PRODUCT_LABEL,
    WAKE_ANNOTATION,
    ConditionType,
    InferenceModel,
    describe_validation_error,
)
from thrifty.api.status import (
    MAX_DECISIONS,
    CapacityStatus,
    DesiredStatus,
    ScalingDecision,
    UtilizationStatus,
)
from thrifty.control import Action, Decision, MetricsWindow
from thrifty.reconcile.status import (
    Problem,
    engine_max_num_batched_tokens,
    engine_max_num_seqs,
    model_status,
    timestamp,
)
from thrifty.render import desired_children, model_selector
from thrifty.vllm_args import InvalidEngineArgs


@dataclass(frozen=True)
class Observed:
    """What the reconcile read of the cluster for one model."""

    deployment: dict[str, Any] | None
    gpu_products: tuple[str, ...]
    """The GPU products the nodes offer (their GPU_PRODUCT_LABEL), sorted."""
    now: datetime.datetime


@dataclass(frozen=True)
class LoopRecord:
    """A control-loop step's decision, with the window it was taken on."""

    decision: Decision
    window: MetricsWindow
    time: datetime.datetime


@dataclass(frozen=True)
class ModelPlan:
    children: tuple[dict[str, Any], ...]
    """Objects to server-side apply; empty when `problem` says why the spec cannot be carried out."""
    status: dict[str, Any]
    problem: Problem | None
    model: InferenceModel | None
    """The validated model; None when the spec does not validate."""


def gpu_products(nodes: list[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(sorted({n["metadata"].get("labels", {}).get(GPU_PRODUCT_LABEL, "") for n in nodes} - {""}))


def _missing_gpu_product(model: InferenceModel, offered: tuple[str, ...]) -> Problem | None:
    if model.gpu_product in offered:
        return None
    return Problem(
        "NoMatchingNodes",
        f"spec.resources.gpu.product: no node offers {model.gpu_product!r} (label {GPU_PRODUCT_LABEL}); "
        f"products on this cluster: {', '.join(offered) or 'none'}",
    )


def _stored_desired(body: dict[str, Any]) -> DesiredStatus | None:
    raw = (body.get("status") or {}).get("desired")
    try:
        return DesiredStatus.model_validate(raw) if raw else None
    except ValidationError:
        return None


def desired_scale(
    model: InferenceModel,
    body: dict[str, Any],
    deployment: dict[str, Any] | None,
    record: LoopRecord | None,
) -> tuple[DesiredStatus, datetime.datetime | None]:
    """Replicas and engine flags the Deployment should run, and the wake request that brought the
    model back from zero (None when there was none).

    With scaling on, the control loop owns them (the flags only with tuneMaxNumSeqs, the token
    budget only while spec.batching.maxNumBatchedTokens is unset): its decision
    when one is handed in, else the one recorded in status.desired, else what the Deployment runs
    (a model from before status.desired existed), within the spec's bounds. Otherwise the spec's.
    A model at zero that a router asked to wake (`wake_request`) runs one replica.
    """
    spec_replicas = model.spec.fixed_replicas
    spec_flag = model.spec.batching.max_num_seqs
    scaling = model.spec.scaling
    if scaling is None or not model.spec.scaling_enabled:
        return DesiredStatus(replicas=spec_replicas, engine_max_num_seqs=spec_flag), None
    stored = _stored_desired(body)
    running_replicas = (deployment or {}).get("spec", {}).get("replicas")
    running_flag = engine_max_num_seqs(deployment)
    tokens: int | None
    if record is not None:
        replicas, flag = record.decision.replicas, record.decision.engine_max_num_seqs
        tokens = record.decision.engine_max_num_batched_tokens
    elif stored is not None:
        replicas, flag, tokens = (
            stored.replicas,
            stored.engine_max_num_seqs,
            stored.engine_max_num_batched_tokens,
        )
    else:
        replicas = int(running_replicas) if running_replicas is not None else scaling.replicas.min
        flag = running_flag if running_flag is not None else spec_flag
        tokens = engine_max_num_batched_tokens(deployment)
    replicas = max(scaling.replicas.min, min(scaling.replicas.max, replicas))
    woken = wake_request(body, record) if replicas == 0 else None
    if woken is not None:
        replicas = 1
    tune = scaling.tune_max_num_seqs
    tuning = tune is not None and tune.enabled
    flag = max(tune.min, min(tune.max, flag)) if tune is not None and tuning else spec_flag
    if not tuning or model.spec.batching.max_num_batched_tokens is not None:
        tokens = None  # the spec's (or vLLM's default) applies
    elif tokens is not None:
        tokens = max(tokens, flag)  # vLLM refuses fewer tokens per step than sequences
    desired = DesiredStatus(replicas=replicas, engine_max_num_seqs=flag, engine_max_num_batched_tokens=tokens)
    return desired, woken


def _parse_time(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.UTC)


def _zeroed_at(body: dict[str, Any], record: LoopRecord | None) -> datetime.datetime | None:
    """When the model last went to zero: this step's decision, else the newest one in status."""
    if record is not None and any(c.after == 0 for c in record.decision.changes):
        return record.time
    for entry in (body.get("status") or {}).get("decisions") or []:
        if entry.get("action") == Action.SCALE_DOWN.value and entry.get("to") == 0:
            return _parse_time(entry.get("time"))
    return None


def wake_request(body: dict[str, Any], record: LoopRecord | None) -> datetime.datetime | None:
    """The time a router asked a model at zero to wake (its WAKE_ANNOTATION), when that is newer
    than the model's last scale to zero; None otherwise."""
    wanted = _parse_time(((body.get("metadata") or {}).get("annotations") or {}).get(WAKE_ANNOTATION))
    if wanted is None:
        return None
    zeroed = _zeroed_at(body, record)
    return wanted if zeroed is None or wanted > zeroed else None


def _record_wake(status: dict[str, Any], wanted: datetime.datetime, now: datetime.datetime) -> dict[str, Any]:
    """The wake in the decision history, and the idle clock restarted from the waiting request."""
    status = dict(status)
    entry = ScalingDecision.model_validate(
        {
            "time": now.astimezone(datetime.UTC).replace(microsecond=0),
            "action": Action.SCALE_UP.value,
            "from": 0,
            "to": 1,
            "reason": f"a request waits at the router for the model at zero ({WAKE_ANNOTATION} {timestamp(wanted)})",
        }
    ).model_dump(mode="json")
    status["decisions"] = ([entry, *(status.get("decisions") or [])])[:MAX_DECISIONS]
    status["lastRequestTime"] = timestamp(wanted)
    return status


def plan_model(body: dict[str, Any], observed: Observed, record: LoopRecord | None = None) -> ModelPlan:
    """The children and status for `body` as observed; `record` is the loop's decision, if any."""
    problem: Problem | None = None
    model: InferenceModel | None = None
    children: tuple[dict[str, Any], ...] = ()
    selector = ""
    desired: DesiredStatus | None = None
    woken: datetime.datetime | None = None
    try:
        model = InferenceModel.model_validate(body)
        selector = ",".join(f"{k}={v}" for k, v in model_selector(model).items())
        desired, woken = desired_scale(model, body, observed.deployment, record)
        children = tuple(
            desired_children(
                model,
                replicas=desired.replicas,
                max_num_seqs=desired.engine_max_num_seqs,
                max_num_batched_tokens=desired.engine_max_num_batched_tokens,
            )
        )
        problem = _missing_gpu_product(model, observed.gpu_products)
    except ValidationError as error:
        problem = Problem("InvalidSpec", describe_validation_error(error))
    except InvalidEngineArgs as error:
        problem = Problem("InvalidEngineArgs", f"spec.engine.extraArgs: {error}")

    before = body.get("status") or {}
    status = model_status(
        body=body,
        deployment=observed.deployment,
        selector=selector or before.get("selector", ""),
        problem=problem,
        now=observed.now,
    )
    if desired is not None and problem is None:
        wanted = desired.model_dump(mode="json", exclude_none=True)
        for key in before.get("desired") or {}:
            wanted.setdefault(key, None)  # a merge patch removes what the decision no longer sets
        status["desired"] = wanted
    if record is not None:
        status = record_decision(status, record)
    if woken is not None and problem is None:
        status = _record_wake(status, woken, observed.now)
    return ModelPlan(children=() if problem else children, status=status, problem=problem, model=model)


# ---- the control loop's part of status ----


def _utilization(window: MetricsWindow, cap: int) -> UtilizationStatus | None:
    latest = list(window.latest_by_pod().values())
    if not latest:
        return None
    count = len(latest)
    return UtilizationStatus(
        batch=round(sum(s.running for s in latest) / count / max(cap, 1), 3),
        kv_cache=round(sum(s.kv_cache_usage for s in latest) / count, 3),
        queue=round(sum(s.waiting for s in latest) / count, 2),
    )


def _significant(value: float, digits: int = 3) -> float:
    return float(f"{value:.{digits}g}")


def _capacity(decision: Decision) -> CapacityStatus | None:
    plan = decision.plan
    if plan is None:
        return None
    return CapacityStatus(
        requests_per_second=_significant(plan.capacity.rate_per_s),
        planned_requests_per_second=_significant(plan.per_replica_rate),
        binding=plan.capacity.binding,
        step_time_scale=round(plan.step_time_scale, 2),
    )


def metrics_condition(
    previous: dict[str, Any] | None, decision: Decision, now: datetime.datetime
) -> dict[str, Any]:
    # The message stays stable while the cause does (figures go to the decision history), so a
    # model whose metrics stay missing is not rewritten every period.
    status = "True" if decision.metrics_available else "False"
    reason = "Fresh" if decision.metrics_available else "MissingOrStale"
    message = (
        "fresh vLLM metrics from every ready replica"
        if decision.metrics_available
        else "vLLM metrics missing, stale or failing: the control loop holds replicas and caps as they are"
    )
    changed = previous is None or previous.get("status") != status
    return {
        "type": ConditionType.METRICS_AVAILABLE.value,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": timestamp(now) if changed else previous["lastTransitionTime"],  # type: ignore[index]
    }


def record_decision(status: dict[str, Any], record: LoopRecord) -> dict[str, Any]:
    """`status` with the loop's decision recorded: the effective cap, recent load, the planner's
    capacity, the decision history (newest first) and MetricsAvailable."""
    decision, now = record.decision, record.time
    status = dict(status)
    engine = (status.get("maxNumSeqs") or {}).get("engine") or decision.engine_max_num_seqs
    status["maxNumSeqs"] = {"engine": engine, "effective": min(decision.effective_cap, engine)}
    utilization = _utilization(record.window, decision.engine_max_num_seqs)
    if utilization is not None:
        status["utilization"] = utilization.model_dump(mode="json", exclude_none=True)
    capacity = _capacity(decision)
    if capacity is not None:
        status["capacity"] = capacity.model_dump(mode="json")
    if decision.last_request is not None:
        status["lastRequestTime"] = timestamp(
            datetime.datetime.fromtimestamp(decision.last_request, datetime.UTC)
        )
    moment = now.astimezone(datetime.UTC).replace(microsecond=0)
    entries = [
        ScalingDecision.model_validate(
            {
                "time": moment,
                "action": c.action.value,
                "from": c.before,
                "to": c.after,
                "reason": c.reason[:1024],
            }
        ).model_dump(mode="json")
        for c in decision.changes
    ]
    if entries:
        status["decisions"] = (entries + list(status.get("decisions") or []))[:MAX_DECISIONS]
    conditions = list(status.get("conditions") or [])
    previous = next((c for c in conditions if c.get("type") == ConditionType.METRICS_AVAILABLE.value), None)
    conditions = [c for c in conditions if c.get("type") != ConditionType.METRICS_AVAILABLE.value]
    conditions.append(metrics_condition(previous, decision, now))
    status["conditions"] = conditions
    return status
