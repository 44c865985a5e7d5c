"""`status`: what the operator observed and decided. Written only by the operator, through the status
subresource; never read back as intent."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from thrifty.api.base import StatusModel

MAX_CONDITIONS = 8
MAX_DECISIONS = 20
CAMEL_CASE_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


class ConditionType(StrEnum):
    READY = "Ready"
    """All desired replicas serve traffic."""
    PROGRESSING = "Progressing"
    """A rollout or scaling step is under way."""
    DEGRADED = "Degraded"
    """The spec cannot be carried out as written; the message names the field and the fix."""
    METRICS_AVAILABLE = "MetricsAvailable"
    """Fresh vLLM metrics were read; when False the control loop holds still."""


class Condition(StatusModel):
    """One aspect of the model's state, in the shape Kubernetes uses for conditions."""

    type: Annotated[str, StringConstraints(pattern=CAMEL_CASE_PATTERN, max_length=64)]
    """Ready, Progressing, Degraded or MetricsAvailable."""

    status: Literal["True", "False", "Unknown"]
    """Whether the condition holds."""

    reason: Annotated[str, StringConstraints(pattern=CAMEL_CASE_PATTERN, max_length=128)]
    """A one-word CamelCase cause, for machines. Example: `InvalidExtraArgs`."""

    message: Annotated[str, StringConstraints(max_length=4096)] = ""
    """For people: what is wrong, where (field path) and what would be right."""

    last_transition_time: datetime
    """When status last changed (RFC 3339)."""

    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The metadata.generation this condition was computed from."""


class MaxNumSeqsStatus(StatusModel):
    """The batch limit at its two levels."""

    engine: Annotated[int, Field(ge=1)] | None = None
    """The `--max-num-seqs` flag the running pods were started with."""

    effective: Annotated[int, Field(ge=1)] | None = None
    """The live cap Thrifty's router enforces per replica (at most `engine`); equals `engine`
    when the model is not behind a Thrifty router."""


class UtilizationStatus(StatusModel):
    """Recent load, averaged over replicas and the control loop's window."""

    batch: Annotated[float, Field(ge=0)] | None = None
    """Running sequences / max_num_seqs (vLLM `vllm:num_requests_running`). 0.78 means 78%."""

    kv_cache: Annotated[float, Field(ge=0)] | None = None
    """Fraction of KV-cache blocks in use (vLLM `vllm:kv_cache_usage_perc`)."""

    queue: Annotated[float, Field(ge=0)] | None = None
    """Requests waiting per replica (vLLM `vllm:num_requests_waiting`)."""


class ScalingDecision(StatusModel):
    """One action of the control loop, kept so that people can see why it scaled."""

    time: datetime
    """When the decision was taken (RFC 3339)."""

    action: Annotated[str, StringConstraints(pattern=CAMEL_CASE_PATTERN, max_length=64)]
    """What changed, e.g. ScaleUp, ScaleDown, RaiseMaxNumSeqs, LowerMaxNumSeqs, RollMaxNumSeqs."""

    from_: Annotated[int, Field(ge=0)] = Field(alias="from")
    """Value before: replicas, or the batch limit."""

    to: Annotated[int, Field(ge=0)]
    """Value after."""

    reason: Annotated[str, StringConstraints(max_length=1024)] = ""
    """Why, with the figures that drove it. Example: `batch utilization 0.93 > 0.80 for 2m, TTFT p95 1.1s < 2s`."""


class DesiredStatus(StatusModel):
    """What the control loop decided the model runs. The loop only records it here; the model's
    one reconcile carries it out on the Deployment (within spec.scaling's bounds), so no other
    writer can put back a count the loop just changed, and an operator restart keeps it."""

    replicas: Annotated[int, Field(ge=0)]
    """Replicas the Deployment should run."""

    engine_max_num_seqs: Annotated[int, Field(ge=1)]
    """The `--max-num-seqs` flag its pods should run with (a change rolls them with a surge)."""

    engine_max_num_batched_tokens: Annotated[int, Field(ge=1)] | None = None
    """The `--max-num-batched-tokens` the loop chose for the observed request mix (with
    spec.scaling.tuneMaxNumSeqs on and spec.batching.maxNumBatchedTokens unset); unset: vLLM's
    default for the GPU. A change rolls the pods with a surge."""


class CapacityStatus(StatusModel):
    """The capacity planner's view of one replica, behind the replica count. Present when Thrifty
    knows the model's server configuration (its GPU and architecture are in the calibration)."""

    requests_per_second: Annotated[float, Field(ge=0)]
    """The highest request rate one replica sustains within the SLO for the observed request mix.
    Example: `10.8`."""

    planned_requests_per_second: Annotated[float, Field(ge=0)]
    """What the planner loads each replica with: `requestsPerSecond` x spec.scaling.targetBatchUtilization."""

    binding: Annotated[str, StringConstraints(max_length=64)]
    """What limits the rate: `ITL p95`, `TTFT p95`, `max_num_seqs`, `KV cache` or `prefill`."""

    step_time_scale: Annotated[float, Field(gt=0)]
    """The engine's step time over the calibration's, fitted online from the observed inter-token gap
    against load; 1.3 means the real engine runs 30% slower than calibrated. `1` until enough minutes of
    traffic have been seen."""


class CostStatus(StatusModel):
    """What serving this model costs: GPU time so far, and the price of its output tokens."""

    gpu_hours: Annotated[float, Field(ge=0)] | None = None
    """GPU-hours held by the model's pods since it was created: every Running pod counts its
    `nvidia.com/gpu` for as long as it runs, Ready or still loading (a loading engine holds its GPUs);
    a Pending pod holds none. Accounted at every reconcile and stored here at most every 5 minutes
    (sooner when status is written anyway), accurate as of `accountedAt`. Example: `36.5`."""

    accounted_at: datetime | None = None
    """When `gpuHours` was last brought up to date (RFC 3339). An operator that restarts goes on
    from here, charging the time in between at the GPUs it finds held."""

    usd_per_1m_tokens: Annotated[float, Field(ge=0)] | None = Field(None, alias="usdPer1MTokens")
    """US dollars per million generated (output) tokens over the control loop's window:
    spec.cost.gpuHourlyUSD x the GPU-hours of the replicas that served in the window / the tokens
    they generated in it, x 1e6. Idle replicas in the window raise it. Unset without
    spec.cost, without the control loop (spec.scaling off, or the operator has no Prometheus) or
    without traffic. Example: `0.42`."""


class InferenceModelStatus(StatusModel):
    """Observed state, written by the operator."""

    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The metadata.generation the operator last reconciled."""

    conditions: Annotated[
        tuple[Condition, ...],
        Field(
            max_length=MAX_CONDITIONS,
            json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
        ),
    ] = ()
    """Ready, Progressing, Degraded and MetricsAvailable, one entry per type."""

    replicas: Annotated[int, Field(ge=0)] | None = None
    """Pods of the model's Deployment (the scale subresource reads it)."""

    ready_replicas: Annotated[int, Field(ge=0)] | None = None
    """Pods that pass their readiness probe."""

    selector: Annotated[str, StringConstraints(max_length=1024)] | None = None
    """Label selector of the pods, in string form (the scale subresource and HPA read it)."""

    max_num_seqs: MaxNumSeqsStatus | None = None
    """The batch limit: engine flag and effective cap."""

    utilization: UtilizationStatus | None = None
    """Recent load."""

    decisions: Annotated[tuple[ScalingDecision, ...], Field(max_length=MAX_DECISIONS)] = ()
    """Recent control-loop decisions, newest first, at most 20."""

    cost: CostStatus | None = None
    """Cost so far and per token."""

    desired: DesiredStatus | None = None
    """The control loop's decision, which the reconcile carries out (spec.scaling on)."""

    capacity: CapacityStatus | None = None
    """One replica's capacity at the SLO, as the planner sees it."""

    last_request_time: datetime | None = None
    """When the control loop last saw the model busy (a request running, waiting or finished), or a
    router asked to wake it (RFC 3339). With spec.scaling.replicas.min 0 the model scales to zero
    once this is spec.scaling.replicas.idleDelay old."""

    def condition(self, condition_type: ConditionType | str) -> Condition | None:
        return next((c for c in self.conditions if c.type == condition_type), None)
