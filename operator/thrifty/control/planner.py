"""Replicas from demand and capacity: the planner behind the replica count when the model's
server configuration is known.

    replicas = demand over the start-up horizon / (capacity at the SLO x target share)

- Capacity: `thrifty.capacity.ReplicaModel` for the window's request mix (what one replica
  sustains within the SLO), on an engine whose step time is corrected online: the mean
  inter-token gap observed against the one the model predicts at the same load per replica
  (`step_time_scale`; 1.3 when the real engine runs 30% slower than the calibration).
- Demand: requests arriving per second (finished plus the growth of those in flight, over the
  last minute or, where higher, over the last scrape interval: a step shows at once). The
  forecast over the start-up horizon follows the recent trend, may only raise the present
  figure, and never more than `forecast_max_growth` times it. The trend counts only beyond its
  own noise (the slope less two standard errors), so a few noisy points, as after a start, do
  not read as a ramp.
- Scale-in: never below what the peak demand of the last `scale_down_cooldown_s` (the spec's
  scale-in delay) needs, so a replica goes only when the surplus has outlasted that delay, nor
  below what the forecast needs (a scale-in the next step would take back), nor below what the
  plain trend over the horizon needs (a rise within the noise still counts here), and not at all while
  the traffic climbs (the last scrape interval above any minute of that delay, or the last
  minute a quarter above the one before).
- The step-time correction leaves out minutes with a backlog at the router throughout: there the
  replicas served at their cap, not at the arrival rate.

Pure and deterministic; capacities are memoised because the same mix recurs every period.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from functools import lru_cache

from thrifty.capacity import LatencySlo, ReplicaCapacity, ReplicaModel, RequestMix
from thrifty.control.policy import ScalingPolicy
from thrifty.control.signals import Signals, TrafficPoint, slope, sure_slope
from thrifty.twin.config import EngineConfig

SCALE_BOUNDS = (0.25, 4.0)
"""The step-time correction stays within these factors of the calibration: beyond them the
configuration, not the GPU's speed, is what the model has wrong."""
_SCALE_EVIDENCE = 3
"""Minutes with a mean ITL needed before the correction moves off 1."""
_SCALE_GRID = 0.02
"""Scales are fitted on a grid this wide in log space (2%)."""
_LONGEST_STEP = round(math.log(1.5) / _SCALE_GRID)
_RISE = 0.25
"""A minute's demand this much above the minute before is a climb, not the noise of steady
traffic (a minute of Poisson arrivals at 10 requests/s varies by about 4%)."""
_MINUTE_S = 60.0
"""What each mean ITL covers: the query's rate window (metrics/queries.py)."""
_SCALE_SPAN_S = 600.0
"""The correction is fitted over this much of the past, one point per minute (each mean ITL
covers the minute before its scrape, so closer points would repeat it)."""


@dataclass(frozen=True, slots=True)
class CapacityPlan:
    """What the planner wants, with the figures behind it."""

    replicas: int
    """Replicas the demand forecast needs (before bounds, step limits and cooldowns)."""
    keep: int
    """Replicas the peak demand of the scale-in delay, or the forecast or the plain trend where
    higher, needs: scale-in goes no lower."""
    per_replica_rate: float
    """Requests per second planned per replica: capacity x target share."""
    capacity: ReplicaCapacity
    step_time_scale: float
    mix: RequestMix
    """The window's mix as the capacity was computed for it (on the cache's grid)."""
    slo: LatencySlo
    demand_rate: float
    forecast_rate: float
    peak_rate: float
    rising: bool
    """The traffic is climbing: the last scrape interval shows more than any minute of the
    scale-in delay, or the last minute a quarter more than the one before (out of an idle spell
    the minute's figure still counts the quiet, and understates what is coming)."""
    reason: str


@lru_cache(maxsize=64)
def _model(config: EngineConfig, step_time_scale: float) -> ReplicaModel:
    return ReplicaModel(config, step_time_scale=step_time_scale)


@lru_cache(maxsize=256)
def capacity_at(
    config: EngineConfig, step_time_scale: float, mix: RequestMix, slo: LatencySlo
) -> ReplicaCapacity:
    """One replica's capacity at the SLO (memoised: the same mix recurs every period)."""
    return _model(config, step_time_scale).capacity(mix, slo)


@lru_cache(maxsize=1024)
def _predicted_itl(config: EngineConfig, step_time_scale: float, mix: RequestMix, rate: float) -> float:
    return _model(config, step_time_scale).predict(mix, rate).mean_itl_s


def _rounded(value: float, step: float = 0.01) -> float:
    """`value` on a log grid `step` wide: equal inputs give equal cache keys."""
    return round(math.exp(round(math.log(value) / step) * step), 4)


def _rounded_mix(mix: RequestMix) -> RequestMix:
    return RequestMix(
        tuple(_rounded(value) for value in mix.prompt_tokens),
        tuple(_rounded(value) for value in mix.output_tokens),
        round(mix.prefix_hit_rate, 2),
    )


def step_time_scale(
    traffic: tuple[TrafficPoint, ...], config: EngineConfig, mix: RequestMix, *, since: float
) -> tuple[float, int]:
    """The engine's step time over the calibration's, and how many scrapes showed it.

    Each minute with a mean ITL gives observed / predicted at its arrivals per replica; the
    scale is the one (within `SCALE_BOUNDS`, on a 2% grid) at which the median of those ratios
    is 1: the model then predicts what was observed. 1.0 without enough evidence.
    """
    points: list[TrafficPoint] = []
    for index in range(len(traffic) - 1, -1, -1):
        point = traffic[index]
        if point.time <= since:
            break
        if point.mean_itl_s is None or point.replicas <= 0 or point.arrivals_per_s <= 0:
            continue
        if points and points[-1].time - point.time < _MINUTE_S - 1e-6:
            continue
        # The gap covers the minute before the scrape: only a minute served by the same replicas
        # throughout is set against its load per replica (in a scale-in, the replicas gone served
        # part of it, and counting only those left would read the engine as faster than it is).
        minute = [p for p in traffic[:index] if p.time > point.time - _MINUTE_S]
        if any(p.replicas != point.replicas for p in minute):
            continue
        # A backlog at the router through the minute: the replicas served at their cap, not at the
        # arrival rate, and a draining backlog reads as few arrivals on busy replicas (a slow engine).
        if min((p.held for p in (*minute, point)), default=0.0) > 0:
            continue
        points.append(point)
    if len(points) < _SCALE_EVIDENCE:
        return 1.0, len(points)
    observed = [(_rounded(p.arrivals_per_s / p.replicas, 0.02), p.mean_itl_s or 0.0) for p in points]

    def excess(k: int) -> float:
        """log of the median observed / predicted gap at scale exp(k * grid): > 0 while the model
        at that scale predicts shorter gaps than were seen (the engine is slower still)."""
        scale = _rounded(math.exp(k * _SCALE_GRID), _SCALE_GRID)
        ratios = [gap / _predicted_itl(config, scale, mix, rate) for rate, gap in observed]
        return math.log(statistics.median(ratios))

    # The predicted gap grows with the scale, faster than in proportion (a slower engine also
    # holds more requests at the same arrival rate), so one step by the ratio overshoots: it only
    # brackets the root. Then false position on the grid of scales the cache is keyed on, which
    # needs three or four evaluations where bisection over the bounds needed eight.
    k_min, k_max = (round(math.log(bound) / _SCALE_GRID) for bound in SCALE_BOUNDS)
    low, high = k_min - 1, k_max + 1  # excess(low) >= 0 > excess(high); the ends are virtual
    f_low: float | None = None
    f_high: float | None = None
    k = 0
    for attempt in range(24):
        value = excess(k)
        if value >= 0:
            low, f_low = k, value
        else:
            high, f_high = k, value
        if high - low <= 1:
            break
        if attempt < 6 and f_low is not None and f_high is not None:
            guess = low + round((high - low) * f_low / (f_low - f_high))
        elif attempt < 6:
            # At most 1.5x per step: far past capacity the model's gap stops growing with the
            # scale (the replica overflows), and a long jump there would read as a bracket.
            step = round(value / _SCALE_GRID)
            guess = k + max(-_LONGEST_STEP, min(_LONGEST_STEP, step))
        else:
            guess = (low + high) // 2
        k = min(high - 1, max(low + 1, guess))
    scale = _rounded(math.exp(max(k_min, low) * _SCALE_GRID), _SCALE_GRID)
    return scale, len(points)


def planned_cap(plan: CapacityPlan, policy: ScalingPolicy) -> int:
    """The per-replica cap the capacity calls for: the 95th-percentile occupancy at capacity
    (Poisson around the mean concurrency), with `burst_headroom` for ramps while replicas start."""
    mean = plan.capacity.concurrency
    occupancy = mean + 1.645 * math.sqrt(mean)
    wanted = math.ceil(occupancy * policy.burst_headroom)
    return max(policy.max_num_seqs_min, min(policy.max_num_seqs_max, wanted))


def plan_capacity(
    signals: Signals, policy: ScalingPolicy, mix: RequestMix, now: float
) -> CapacityPlan | None:
    """The replicas demand and capacity call for; None when the traffic is unknown."""
    config = policy.engine
    if config is None or not signals.traffic:
        return None
    slo = LatencySlo(policy.ttft_p95_slo_s, policy.itl_p95_slo_s)
    key_mix = _rounded_mix(mix)
    scale, evidence = step_time_scale(signals.traffic, config, key_mix, since=now - _SCALE_SPAN_S)
    capacity = capacity_at(config, scale, key_mix, slo)
    per_replica = capacity.rate_per_s * policy.target_batch_utilization
    if per_replica <= 0:
        return None

    recent = [point for point in signals.traffic if point.time > now - policy.recent_s]
    newest = recent[-1] if recent else signals.traffic[-1]
    # A step up shows first in the last scrape interval: the higher of the two figures.
    demand = max(newest.arrivals_per_s, newest.arrivals_last_step_per_s or 0.0)
    trend_points = [(p.time, p.arrivals_per_s) for p in signals.traffic if p.time > now - policy.window_s]
    horizon = policy.startup_s + policy.recent_s / 2
    most = demand * (policy.forecast_max_growth - 1)
    forecast = demand + min(sure_slope(trend_points) * horizon, most)
    # Scale-in errs the other way: a rise the points only suggest (the plain trend, noise and
    # all) is reason enough to keep a replica that would take `startup_s` to come back.
    possible = demand + min(max(0.0, slope(trend_points)) * horizon, most)
    held = policy.scale_down_cooldown_s
    peak = max((p.arrivals_per_s for p in signals.traffic if p.time > now - held), default=demand)
    replicas = math.ceil(forecast / per_replica - 1e-9) if forecast > 0 else 0
    # A rising trend can lie above the peak seen so far: scale-in never goes below either.
    kept = max(peak, forecast, possible)
    keep = math.ceil(kept / per_replica - 1e-9) if kept > 0 else 0
    minute_ago = next((p for p in reversed(signals.traffic) if p.time <= newest.time - policy.recent_s), None)
    rising = (newest.arrivals_last_step_per_s or 0.0) > peak or (
        minute_ago is not None and newest.arrivals_per_s > (1 + _RISE) * minute_ago.arrivals_per_s
    )
    corrected = (
        f"step time x{scale:.2f} of the calibration over {evidence} minutes"
        if evidence >= _SCALE_EVIDENCE
        else "the calibration uncorrected"
    )
    reason = (
        f"a replica sustains {capacity.rate_per_s:.1f} req/s within the SLO ({capacity.binding} binds; "
        f"{mix.describe()}; {corrected}), planned at {policy.target_batch_utilization:.0%}: "
        f"{per_replica:.1f}/s; demand {demand:.1f} req/s, {forecast:.1f} forecast over "
        f"{policy.startup_s:g}s (the trend alone: {possible:.1f}), peak {peak:.1f} over {held:g}s"
    )
    return CapacityPlan(
        replicas=replicas,
        keep=keep,
        per_replica_rate=per_replica,
        capacity=capacity,
        step_time_scale=scale,
        mix=key_mix,
        slo=slo,
        demand_rate=demand,
        forecast_rate=forecast,
        peak_rate=peak,
        rising=rising,
        reason=reason,
    )
