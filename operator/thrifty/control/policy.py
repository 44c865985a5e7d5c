"""The policy's settings: what the user asked for in spec.scaling, plus the damping constants.

`ScalingPolicy` is a plain frozen value so that the benchmark can run the policy without
Kubernetes; `policy_from_spec` maps an InferenceModel's `spec.scaling` onto it.
"""

from __future__ import annotations

from dataclasses import dataclass

from thrifty.api.scaling import ScalingSpec
from thrifty.twin.config import EngineConfig


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    """Bounds, targets and damping of the control loop. The defaults are the ones every model
    gets; only the fields that mirror spec.scaling differ between models."""

    min_replicas: int = 1
    """0: the model may scale to zero after `idle_delay_s` without a request (a router wakes it);
    the planners themselves never go below one replica (`serving_min`)."""
    max_replicas: int = 8
    idle_delay_s: float = 900.0
    """With `min_replicas` 0: time without a request before the last replica goes."""
    target_batch_utilization: float = 0.8
    """Running requests per replica / the replica's capacity (the load at which the ITL SLO would
    just hold) that the replica count aims at: the rest is the margin for noise and bursts."""
    ttft_p95_slo_s: float | None = None
    itl_p95_slo_s: float | None = None
    tune_max_num_seqs: bool = False
    """Whether the loop may move the effective cap and the engine flag."""
    tune_token_budget: bool = False
    """Whether the loop picks the engine's --max-num-batched-tokens (control/token_budget.py)."""
    max_num_seqs_min: int = 1
    max_num_seqs_max: int = 8192
    cap_enforced_by_router: bool = True
    """True when Thrifty's router holds requests beyond the effective cap: then the cap moves
    for free. False: the only cap is the engine flag, and each change is a rolling restart."""
    scale_up_cooldown_s: float = 60.0
    scale_down_cooldown_s: float = 300.0
    rollout_cooldown_s: float = 600.0
    cap_change_cooldown_s: float = 60.0
    """Least time between two raises of the effective cap: one latency window, so that the next
    raise sees the effect of the last. Lowering for KV exhaustion or preemptions never waits."""
    startup_s: float = 120.0
    """How long a new replica takes to serve: the horizon the demand forecast looks ahead."""
    window_s: float = 300.0
    """A scale-down needs surplus over this much of the window."""
    evidence_s: float = 1800.0
    """How far back the window reaches: the heaviest load that held the SLO (which bounds how far
    the capacity estimate may extrapolate) and the KV and ITL-p95 bounds are sought over this much
    history. The live loop queries windows this long."""
    recent_s: float = 60.0
    """The part of the window that describes the present (latency percentiles cover one minute)."""
    sample_interval_s: float = 15.0
    """Prometheus's scrape interval for the vLLM pods."""
    stale_after_intervals: float = 3.0
    """A pod whose newest sample is older than this many intervals counts as not reporting."""
    near_slo: float = 0.8
    """An ITL p95 at or above this share of its SLO counts as near it (scale-in waits; without
    slow-gap shares such minutes bound the capacity)."""
    slow_share_budget: float = 0.05
    """The share of inter-token gaps that may exceed the ITL SLO: 5% for a p95 objective."""
    slow_share_exponent: float = 1.5
    """How fast the slow-gap share grows with load (share ~ load^exponent). A slow gap comes from
    a step that carries a long prefill (odds about proportional to the load) or several shorter
    ones at once (odds growing about with its square); 1.5 sits between the two regimes. Too small
    an exponent over-estimates the capacity below the SLO and too large one under-estimates it;
    at the SLO every exponent agrees, so the estimate sharpens as replicas approach it."""
    probe_limit: float = 2.0
    """The capacity estimate reaches at most this multiple of the heaviest load that held the SLO
    in the window."""
    estimate_s: float = 300.0
    """The capacity estimate from slow gaps is the median over this much of the window."""
    overload_ratio_cap: float = 1.25
    """Latency ratios above this count as this much when bounding the capacity (see cap.py)."""
    probe_factor: float = 1.15
    """Without a capacity estimate, a replica is planned to carry at most this multiple of the
    highest load that stayed clear of the SLO: capacity is found by steps."""
    min_informative_running: float = 1.0
    """Scrapes with fewer running requests per replica say nothing about capacity."""
    min_informative_kv: float = 0.05
    """KV usage below this says nothing about how far the KV cache would stretch."""
    kv_high: float = 0.92
    """KV-cache usage at which the cap drops at once."""
    kv_raise_below: float = 0.8
    """The KV-cache usage the capacity estimate allows a replica."""
    burst_headroom: float = 1.5
    """The effective cap is this multiple of the capacity: room for bursts and ramps while new
    replicas load, and a stop for runaway concurrency."""
    cap_deadband: float = 0.1
    """The cap moves only when the estimate differs from it by more than this share."""
    engine_deadband: float = 0.25
    """The engine flag (a rolling restart) moves only beyond this share."""
    forecast_max_growth: float = 1.5
    """The demand forecast over the start-up horizon never exceeds this multiple of today's."""
    sustained_scrapes: int = 3
    """A queue counts as lasting when every one of this many scrapes saw it."""
    queue_drain_share: float = 0.5
    """A queue must drain within this share of the TTFT SLO (the rest is prefill and noise)."""
    scale_up_max_factor: float = 2.0
    scale_up_max_pods: int = 4
    """One scale-up adds at most max(replicas * (factor - 1), pods)."""
    scale_down_max_share: float = 0.25
    """One scale-down removes at most this share of the replicas (and at least one)."""
    engine_step: float = 1.5
    """Factor by which a rolling restart raises the engine's --max-num-seqs."""
    engine_granularity: int = 16
    """Engine flag values are multiples of this (CUDA-graph batch sizes are)."""
    engine: EngineConfig | None = None
    """One replica's server configuration (model shape, GPU, flags), for the capacity model
    (`thrifty.capacity`): with it, replicas follow demand over capacity at the SLO; without it
    (a model or GPU the calibration does not know), they follow the window's load estimate."""

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas or self.max_replicas < 1:
            raise ValueError(
                f"replicas: need 0 <= min ({self.min_replicas}) <= max ({self.max_replicas}), max >= 1; "
                "spec.scaling.replicas.min must not exceed spec.scaling.replicas.max"
            )
        if not 0 < self.target_batch_utilization <= 1:
            raise ValueError(
                f"target_batch_utilization: {self.target_batch_utilization} must be in (0, 1], "
                "as spec.scaling.targetBatchUtilization is"
            )
        if not 1 <= self.max_num_seqs_min <= self.max_num_seqs_max:
            raise ValueError(
                f"max_num_seqs bounds: need 1 <= min ({self.max_num_seqs_min}) <= max "
                f"({self.max_num_seqs_max}), as spec.scaling.tuneMaxNumSeqs.min/max"
            )

    @property
    def serving_min(self) -> int:
        """Fewest replicas while serving: scaling to zero is the idle rule's alone."""
        return max(1, self.min_replicas)

    @property
    def stale_after_s(self) -> float:
        return self.stale_after_intervals * self.sample_interval_s


def policy_from_spec(
    spec: ScalingSpec,
    *,
    engine_max_num_seqs: int,
    behind_router: bool,
    sample_interval_s: float = 15.0,
    startup_s: float = 120.0,
    engine: EngineConfig | None = None,
    token_budget_pinned: bool = False,
) -> ScalingPolicy:
    """The policy for one InferenceModel's `spec.scaling`.

    `engine_max_num_seqs` is spec.batching.maxNumSeqs: without tuning, the cap stays there.
    `behind_router` says whether a Thrifty router enforces the effective cap for this model.
    `engine` is one replica's server configuration, when the capacity model knows it.
    `token_budget_pinned`: spec.batching.maxNumBatchedTokens is set, so the loop leaves it.
    """
    tune = spec.tune_max_num_seqs
    tuning = tune is not None and tune.enabled
    slo = spec.slo
    cooldowns = spec.cooldowns
    return ScalingPolicy(
        min_replicas=spec.replicas.min,
        max_replicas=spec.replicas.max,
        idle_delay_s=spec.replicas.idle_delay_seconds,
        target_batch_utilization=spec.target_batch_utilization,
        ttft_p95_slo_s=slo.ttft_p95_seconds if slo is not None else None,
        itl_p95_slo_s=slo.itl_p95_seconds if slo is not None else None,
        tune_max_num_seqs=tuning,
        tune_token_budget=tuning and engine is not None and not token_budget_pinned,
        max_num_seqs_min=tune.min if tune is not None and tuning else engine_max_num_seqs,
        max_num_seqs_max=tune.max if tune is not None and tuning else engine_max_num_seqs,
        cap_enforced_by_router=behind_router,
        scale_up_cooldown_s=cooldowns.scale_up_seconds,
        scale_down_cooldown_s=cooldowns.scale_down_seconds,
        rollout_cooldown_s=cooldowns.max_num_seqs_rollout_seconds,
        sample_interval_s=sample_interval_s,
        startup_s=startup_s,
        engine=engine,
    )
