"""What one replica can carry (its capacity), and the effective cap the router enforces.

Capacity is the number of running requests per replica at which the ITL SLO would just hold (and
the KV cache would sit at `kv_raise_below`). A bigger batch makes every step slower but yields more
tokens per step, so the cheapest fleet runs each replica close to that load: the replica count is
sized for `target_batch_utilization` of the capacity. The effective cap sits `burst_headroom`
times above the capacity: it lets bursts and ramps run (a little over the SLO for a minute costs
less than a queue growing while new replicas load) and stops runaway concurrency before it
exhausts the KV cache or stretches every step; beyond it the router queues.

The capacity comes from the window, with no model of the GPU:

- preferred, the share of inter-token gaps longer than the ITL SLO (the p95 holds while it stays
  under 5%). It grows smoothly with load, unlike the p95 itself, which sits on the fixed cost of a
  decode step and then jumps once prefill-heavy steps pass 5% of tokens. Each minute gives
  `load x (5% / share) ^ (1 / slow_share_exponent)`; the median over `estimate_s` damps noise,
  and the result goes at most `probe_limit` times beyond the heaviest load that held the SLO in
  the window (half an hour), so capacity is found in bounded steps;
- else minutes whose ITL p95 came near the SLO bound it by `load / ratio`, and minutes below it
  show a load is safe, so a scale-in asks at most `probe_factor` times the highest safe load;
- KV usage (proportional to running requests) bounds it, and so does a last minute over the SLO.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from thrifty.control.policy import ScalingPolicy
from thrifty.control.signals import LoadPoint, Signals, quantile
from thrifty.control.state import ScalingState


@dataclass(frozen=True, slots=True)
class Capacity:
    """What the window tells about the requests one replica can carry within the SLO."""

    requests: float
    """The figure to plan with."""
    basis: str
    """How it was found, in words (for reasons)."""
    known: bool
    """True when `requests` estimates the capacity itself; False when it is only a step beyond a
    load shown to be safe (then the cap only rises, and only while replicas use it)."""


@dataclass(frozen=True, slots=True)
class CapPlan:
    cap: int
    """The cap to run with (within the engine flag when the router enforces it)."""
    reason: str
    """Why it moved; empty when it did not."""
    capacity: Capacity | None = None
    wants_above_engine: bool = False
    """The cap would rise above the engine flag: only a rolling restart can lift it."""
    wants_engine: int | None = None
    """Without a router: the engine flag the cap asks for (a rolling restart), else None."""


def _robust_low(values: list[float]) -> float | None:
    """A low figure that one noisy minute cannot set alone: the lower quartile of four or more."""
    if not values:
        return None
    return quantile(values, 0.25) if len(values) >= 4 else min(values)


def _by_slow_share(points: list[LoadPoint], policy: ScalingPolicy) -> float | None:
    """Median over `points` of the load at which the slow-gap share would reach the SLO's budget."""
    budget = policy.slow_share_budget
    exponent = policy.slow_share_exponent
    estimates = [
        point.running_per_replica * (budget / max(point.itl_slow_share, budget / 1000)) ** (1 / exponent)
        for point in points
        if point.itl_slow_share is not None
    ]
    return quantile(estimates, 0.5) if estimates else None


def _safe_load(points: list[LoadPoint], policy: ScalingPolicy) -> float | None:
    """The heaviest load of a minute that kept clear of the ITL SLO (or of any, without one)."""
    if policy.itl_p95_slo_s is None:
        return max((point.running_per_replica for point in points), default=None)
    safe = [
        point.running_per_replica
        for point in points
        if (point.itl_slow_share is not None and point.itl_slow_share <= policy.slow_share_budget)
        or (
            point.itl_slow_share is None and point.itl_ratio is not None and point.itl_ratio < policy.near_slo
        )
    ]
    return max(safe) if safe else None


def _latency_bound(points: list[LoadPoint], policy: ScalingPolicy) -> float | None:
    """From minutes whose ITL p95 came near the SLO: their load, scaled to the SLO."""
    if not points:
        return None
    # Only minutes carrying at least half the heaviest load count: a lightly loaded minute can miss
    # the SLO on one long prompt's prefill, which says nothing about how many requests fit. Far
    # past the SLO latency climbs faster than load, so a ratio counts at most
    # `overload_ratio_cap`: such a minute shows the capacity is lower, not how much lower.
    heaviest = max(point.running_per_replica for point in points)
    return _robust_low(
        [
            point.running_per_replica / min(point.itl_ratio, policy.overload_ratio_cap)
            for point in points
            if point.itl_ratio is not None
            and point.itl_ratio >= policy.near_slo
            and point.running_per_replica >= 0.5 * heaviest
        ]
    )


def estimate_capacity(signals: Signals, policy: ScalingPolicy, now: float) -> Capacity | None:
    """The requests one replica can carry within the SLO, from the load points up to `now`."""
    points = [
        point
        for point in signals.load_points
        if now - policy.evidence_s < point.time <= now
        and point.running_per_replica >= policy.min_informative_running
    ]
    if not points:
        return None
    latency_slo = policy.itl_p95_slo_s is not None
    recent = [point for point in points if point.time > now - policy.estimate_s]
    by_share = _by_slow_share(recent, policy) if latency_slo else None
    by_p95 = _latency_bound(points, policy) if latency_slo and by_share is None else None
    by_kv = _robust_low(
        [
            point.running_per_replica * policy.kv_raise_below / point.kv_peak
            for point in points
            if point.kv_peak >= policy.min_informative_kv
        ]
    )
    breached = [
        point
        for point in points
        if point.time > now - policy.recent_s and point.itl_ratio is not None and point.itl_ratio > 1
    ]
    by_breach = _latency_bound(breached, policy)

    estimate, basis = (by_share, "the share of slow inter-token gaps")
    if estimate is None:
        estimate, basis = by_p95, "minutes near the ITL SLO"
    safe = _safe_load(points, policy)
    # Extrapolation goes at most `probe_limit` times beyond a load seen to hold the SLO.
    probe = safe * policy.probe_limit if safe is not None else None
    for bound, name in (
        (probe, f"{policy.probe_limit:g} x the heaviest load that held the SLO"),
        (by_kv, "KV-cache usage"),
        (by_breach, "a minute over the ITL SLO"),
    ):
        if bound is not None and estimate is not None and bound < estimate:
            estimate, basis = bound, name
    if estimate is not None:
        return Capacity(estimate, basis, known=True)
    if by_kv is not None or by_breach is not None:
        bound = min(b for b in (by_kv, by_breach) if b is not None)
        return Capacity(
            bound, "KV-cache usage" if bound == by_kv else "a minute over the ITL SLO", known=True
        )
    if safe is not None:
        return Capacity(safe * policy.probe_factor, "a step beyond the heaviest safe load", known=False)
    return None


def plan_cap(signals: Signals, state: ScalingState, policy: ScalingPolicy, now: float) -> CapPlan:
    """The effective cap for the next period (the current one when tuning is off)."""
    current = state.effective_cap
    capacity = estimate_capacity(signals, policy, now)
    if not policy.tune_max_num_seqs:
        return CapPlan(current, "", capacity)
    running = signals.running_per_replica

    if signals.preemptions_recent > 0 or signals.kv_peak >= policy.kv_high:
        basis = min(float(current), max(1.0, running))
        target = max(policy.max_num_seqs_min, math.floor(basis * 0.9))
        cause = (
            f"{signals.preemptions_recent:g} preemptions in the last {policy.recent_s:g}s"
            if signals.preemptions_recent > 0
            else f"KV cache {signals.kv_peak:.2f} >= {policy.kv_high:.2f}"
        )
        return _moved(
            current, target, f"{cause} at {running:.0f} running per replica", capacity, policy, state
        )

    if capacity is None:
        return CapPlan(current, "", None)
    if not capacity.known and capacity.requests * policy.burst_headroom < 0.9 * current:
        return CapPlan(current, "", capacity)  # only a lower bound, below the cap: nothing learned
    wanted = round(capacity.requests * policy.burst_headroom)
    wanted = max(policy.max_num_seqs_min, min(policy.max_num_seqs_max, wanted))
    deadband = policy.cap_deadband if policy.cap_enforced_by_router else policy.engine_deadband
    evidence = (
        f"a replica carries about {capacity.requests:.0f} requests within the SLO (from {capacity.basis}); "
        f"now {running:.0f} running per replica, ITL p95 {_ms(signals.itl_p95_s)}, KV cache {signals.kv_peak:.2f}"
    )
    if wanted < current * (1 - deadband) and capacity.known:
        return _moved(current, wanted, evidence, capacity, policy, state)
    cooling = state.last_cap_change is not None and now - state.last_cap_change < policy.cap_change_cooldown_s
    if wanted > current * (1 + deadband) and not cooling:
        return _moved(current, wanted, evidence, capacity, policy, state)
    return CapPlan(current, "", capacity)


def _moved(
    current: int,
    target: int,
    reason: str,
    capacity: Capacity | None,
    policy: ScalingPolicy,
    state: ScalingState,
) -> CapPlan:
    if target == current:
        return CapPlan(current, "", capacity)
    if not policy.cap_enforced_by_router:
        # Without a router the cap is the engine flag: ask for a roll, keep the cap until it happens.
        return CapPlan(current, reason, capacity, wants_engine=target)
    engine = state.engine_max_num_seqs
    if target > engine:
        return CapPlan(engine, reason if current < engine else "", capacity, wants_above_engine=True)
    return CapPlan(target, reason, capacity)


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.0f}ms"
