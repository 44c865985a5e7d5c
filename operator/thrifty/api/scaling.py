"""`spec.scaling` and `spec.cost`: the bounds and targets of Thrifty's control loop, which adjusts
replicas and the batch limit (max_num_seqs) from live vLLM metrics."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import ConfigDict, Field, model_validator

from thrifty.api.base import CelRule, SpecModel, cel_rules
from thrifty.api.durations import Duration, duration_seconds

REPLICAS_MIN_LE_MAX = CelRule(
    rule="self.min <= self.max",
    message="spec.scaling.replicas.min must be less than or equal to spec.scaling.replicas.max",
    field_path=".min",
)
TUNE_MIN_LE_MAX = CelRule(
    rule="self.min <= self.max",
    message="spec.scaling.tuneMaxNumSeqs.min must be less than or equal to spec.scaling.tuneMaxNumSeqs.max",
    field_path=".min",
)


class ReplicaBounds(SpecModel):
    """The range the control loop keeps the replica count in."""

    model_config = ConfigDict(json_schema_extra=cel_rules(REPLICAS_MIN_LE_MAX))

    min: Annotated[int, Field(ge=0, le=1000)] = 1
    """Fewest replicas, kept even when idle. Default 1. `0` lets the model scale to zero once no
    request has arrived for `idleDelay`; an InferenceRouter in front of it holds the next request,
    wakes the model and answers after the cold start (without a router nothing wakes it).
    Example: `1`."""

    max: Annotated[int, Field(ge=1, le=1000)]
    """Most replicas; each costs gpu.count GPUs. Example: `8`."""

    idle_delay: Duration = "15m"
    """With `min: 0`: how long the model must go without a request before its last replica goes
    (each wake costs a cold start, so sparse traffic keeps one replica). Ignored otherwise.
    Default `15m`."""

    @property
    def idle_delay_seconds(self) -> float:
        return duration_seconds(self.idle_delay)

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Self:
        if self.min > self.max:
            raise REPLICAS_MIN_LE_MAX.violation(f"min {self.min} > max {self.max}")
        return self


class SloSpec(SpecModel):
    """Latency objectives. The control loop raises concurrency per GPU only while they hold, and
    adds replicas when they do not."""

    ttft_p95: Duration | None = None
    """95th-percentile time to first token (from vLLM's `vllm:time_to_first_token_seconds`
    histogram), as a duration: a number and ms, s, m or h. Example: `2s`."""

    itl_p95: Duration | None = None
    """95th-percentile inter-token latency (vLLM's `vllm:inter_token_latency_seconds`), as a
    duration. Example: `50ms`."""

    @property
    def ttft_p95_seconds(self) -> float | None:
        return None if self.ttft_p95 is None else duration_seconds(self.ttft_p95)

    @property
    def itl_p95_seconds(self) -> float | None:
        return None if self.itl_p95 is None else duration_seconds(self.itl_p95)


class TuneMaxNumSeqs(SpecModel):
    """Tuning of the batch limit. Thrifty moves an *effective* cap at its router instantly and
    rolls the engine flag `--max-num-seqs` only when the cap has to leave what the flag allows."""

    model_config = ConfigDict(json_schema_extra=cel_rules(TUNE_MIN_LE_MAX))

    enabled: bool = True
    """Whether the control loop may change the batch limit. Default true."""

    min: Annotated[int, Field(ge=1, le=8192)]
    """Lowest batch limit the loop may choose. Example: `32`."""

    max: Annotated[int, Field(ge=1, le=8192)]
    """Highest batch limit the loop may choose. Example: `512`."""

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Self:
        if self.min > self.max:
            raise TUNE_MIN_LE_MAX.violation(f"min {self.min} > max {self.max}")
        return self


class Cooldowns(SpecModel):
    """Least time between two actions of one kind, so that the loop does not flap."""

    scale_up: Duration = "1m"
    """After adding replicas, wait this long before adding more. Default `1m`."""

    scale_down: Duration = "5m"
    """After any replica change, wait this long before removing replicas. Default `5m`."""

    max_num_seqs_rollout: Duration = "10m"
    """After rolling the engine for a new `--max-num-seqs`, wait this long before another roll
    (each roll reloads the model). Default `10m`."""

    @property
    def scale_up_seconds(self) -> float:
        return duration_seconds(self.scale_up)

    @property
    def scale_down_seconds(self) -> float:
        return duration_seconds(self.scale_down)

    @property
    def max_num_seqs_rollout_seconds(self) -> float:
        return duration_seconds(self.max_num_seqs_rollout)


class ScalingSpec(SpecModel):
    """Automatic scaling by Thrifty's control loop. While enabled, spec.replicas must be unset."""

    enabled: bool = True
    """Whether the control loop manages this model. Default true; false pauses it and keeps the
    settings."""

    replicas: ReplicaBounds
    """Bounds on the replica count."""

    target_batch_utilization: Annotated[float, Field(gt=0, le=1)] = 0.8
    """Target share of each replica's SLO capacity in use: running sequences over the batch a
    replica can run while meeting spec.slo (its max_num_seqs when no SLO binds), averaged over
    replicas. Above it the loop first raises the batch limit (while SLOs and KV cache allow), then
    adds replicas; well below it, it removes replicas. Default 0.8."""

    slo: SloSpec | None = None
    """Latency objectives the loop protects."""

    tune_max_num_seqs: TuneMaxNumSeqs | None = None
    """Bounds for tuning the batch limit; unset keeps spec.batching.maxNumSeqs fixed. While
    enabled, and spec.batching.maxNumBatchedTokens is unset, the loop also picks the engine's
    token budget per step for the observed request mix (the one with the most capacity within
    spec.slo), rolling the pods when the replicas it saves repay the restart."""

    cooldowns: Cooldowns = Cooldowns()
    """Damping between actions."""


class CostSpec(SpecModel):
    """Prices used to report cost in status."""

    gpu_hourly_usd: Annotated[float, Field(ge=0, le=1000)] = Field(alias="gpuHourlyUSD")
    """Price of one GPU for one hour, in US dollars (on-demand or your negotiated rate). Status
    reports GPU-hours and USD per million tokens from it. Example: `2.5`."""
