"""The replica count: enough replicas that each carries `target_batch_utilization` of its
capacity (cap.py) under the demand expected once a new replica would serve, and enough to drain
any queue within the TTFT SLO. More only after the scale-up cooldown and by limited steps; fewer
only after a surplus sustained over `window_s`, by limited steps, never while latency is near its
SLO, replicas are starting, or preemptions happened.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from thrifty.control.cap import Capacity
from thrifty.control.planner import CapacityPlan
from thrifty.control.policy import ScalingPolicy
from thrifty.control.signals import Signals
from thrifty.control.state import ScalingState


@dataclass(frozen=True, slots=True)
class ReplicaPlan:
    replicas: int
    reason: str
    """Why it moved, or why it could not; empty when nothing was wanted."""


def per_replica_target(cap: int, capacity: Capacity | None, policy: ScalingPolicy) -> float:
    """Requests one replica should carry: `target_batch_utilization` of its capacity. The capacity
    is the window's estimate, but never above what the cap allows (a cap that has not caught up,
    inside its deadband or at the engine flag, still limits the replicas)."""
    ceiling = cap / policy.burst_headroom
    requests = min(capacity.requests, ceiling) if capacity is not None else ceiling
    return max(1.0, requests * policy.target_batch_utilization)


def _needed_for_demand(signals: Signals, per_replica: float, policy: ScalingPolicy) -> tuple[int, str]:
    present = signals.demand_recent
    growth = max(0.0, signals.demand_slope_per_s) * (policy.startup_s + policy.recent_s / 2)
    forecast = present + min(growth, present * (policy.forecast_max_growth - 1))
    needed = math.ceil(forecast / per_replica - 1e-9) if forecast > 0 else 0
    reason = (
        f"{present:.0f} requests in flight, {forecast:.0f} expected once a new replica serves, at "
        f"{per_replica:.0f} per replica"
    )
    return needed, reason


def _needed_for_queue(signals: Signals, per_replica: float, policy: ScalingPolicy) -> tuple[int, str]:
    """Replicas that drain the queue within `queue_drain_share` of the TTFT SLO while keeping up
    with arrivals. A replica's throughput at its target load follows from Little's law: requests
    finished per second now, scaled by target load / load now."""
    slo = policy.ttft_p95_slo_s
    finished = signals.finished_per_s
    replicas = len(signals.reporting_pods)
    running = signals.running_per_replica
    if slo is None or finished is None or signals.waiting_now <= 0 or replicas == 0 or running < 1:
        return 0, ""
    throughput = finished / replicas * per_replica / running
    if throughput <= 0:
        return 0, ""
    arrivals = finished + max(0.0, signals.waiting_slope_per_s)
    budget = slo * policy.queue_drain_share
    needed = math.ceil((arrivals + signals.waiting_now / budget) / throughput - 1e-9)
    reason = (
        f"{signals.waiting_now:.0f} queued must drain within {budget:g}s on top of {arrivals:.1f} "
        f"arrivals/s, at {throughput:.1f} requests/s per replica"
    )
    return needed, reason


def _needed_for_queue_at_rate(signals: Signals, plan: CapacityPlan, policy: ScalingPolicy) -> tuple[int, str]:
    """Replicas that drain a lasting queue within `queue_drain_share` of the TTFT SLO on top of
    the demand, each serving the planned rate. Requests that arrived since the last engine step
    wait for a moment in every busy engine; only a queue seen at every recent scrape counts."""
    slo = policy.ttft_p95_slo_s
    queued = signals.waiting_sustained
    if slo is None or queued <= 0:
        return 0, ""
    budget = slo * policy.queue_drain_share
    needed = math.ceil((plan.demand_rate + queued / budget) / plan.per_replica_rate - 1e-9)
    reason = (
        f"{queued:.0f} queued for {policy.sustained_scrapes} scrapes must drain within {budget:g}s on top of "
        f"{plan.demand_rate:.1f} "
        f"arrivals/s, at {plan.per_replica_rate:.1f} requests/s per replica"
    )
    return needed, reason


def plan_replicas(
    signals: Signals,
    state: ScalingState,
    policy: ScalingPolicy,
    cap: int,
    capacity: Capacity | None,
    now: float,
    capacity_plan: CapacityPlan | None = None,
) -> ReplicaPlan:
    """The replica count for the next period, within the policy's bounds."""
    current = state.replicas
    per_replica = per_replica_target(cap, capacity, policy)
    if capacity_plan is not None:
        by_demand, demand_reason = capacity_plan.replicas, capacity_plan.reason
        by_queue, queue_reason = _needed_for_queue_at_rate(signals, capacity_plan, policy)
    else:
        by_demand, demand_reason = _needed_for_demand(signals, per_replica, policy)
        by_queue, queue_reason = _needed_for_queue(signals, per_replica, policy)
    wanted, reason = (by_queue, queue_reason) if by_queue > by_demand else (by_demand, demand_reason)
    ttft = signals.ttft_ratio
    if ttft is not None and ttft > 1.0 and signals.waiting_now > 0 and wanted <= current:
        wanted = current + 1
        reason = f"TTFT p95 {signals.ttft_p95_s:.2f}s is {ttft:.2f} of its SLO with {signals.waiting_now:.0f} queued"
    itl = signals.itl_ratio
    if (
        capacity_plan is not None
        and itl is not None
        and itl > 1.0
        and wanted <= current
        and capacity_plan.demand_rate >= 0.5 * current * capacity_plan.per_replica_rate
    ):
        # The model said the replicas suffice and the SLO says they do not: react, and let the
        # step-time correction catch up.
        wanted = current + 1
        reason = (
            f"ITL p95 {signals.itl_p95_s or 0:.3f}s is {itl:.2f} of its SLO at {capacity_plan.demand_rate:.1f} "
            f"req/s on {current} replicas, though the model expected {capacity_plan.per_replica_rate:.1f}/s "
            "per replica to hold it"
        )

    if wanted > current:
        return _scale_up(wanted, reason, state, policy, now)
    if capacity_plan is not None:
        if capacity_plan.rising:
            return ReplicaPlan(current, "")
        return _scale_down_to(capacity_plan.keep, capacity_plan.reason, signals, state, policy, now)
    return _scale_down(signals, state, policy, per_replica, now)


def _scale_up(
    wanted: int, reason: str, state: ScalingState, policy: ScalingPolicy, now: float
) -> ReplicaPlan:
    current = state.replicas
    if current >= policy.max_replicas:
        return ReplicaPlan(current, f"at max {policy.max_replicas} replicas; wanted {wanted}: {reason}")
    if state.last_scale_up is not None and now - state.last_scale_up < policy.scale_up_cooldown_s:
        return ReplicaPlan(current, "")
    step = max(math.ceil(current * (policy.scale_up_max_factor - 1)), policy.scale_up_max_pods)
    target = min(policy.max_replicas, wanted, current + step)
    return ReplicaPlan(target, f"{wanted} replicas needed: {reason}")


def _scale_down(
    signals: Signals, state: ScalingState, policy: ScalingPolicy, per_replica: float, now: float
) -> ReplicaPlan:
    current = state.replicas
    if current <= policy.serving_min:
        return ReplicaPlan(current, "")
    wanted = max(policy.serving_min, math.ceil(signals.demand_high / per_replica - 1e-9))
    if wanted >= current:
        return ReplicaPlan(current, "")
    blockers = _scale_down_blockers(signals, state, policy, now)
    if blockers:
        return ReplicaPlan(current, "")
    step = max(1, math.floor(current * policy.scale_down_max_share))
    target = max(wanted, current - step)
    reason = (
        f"90th percentile of {policy.window_s:g}s of demand is {signals.demand_high:.0f} requests: "
        f"{wanted} replicas at {per_replica:.0f} each suffice"
    )
    return ReplicaPlan(target, reason)


def _scale_down_to(
    keep: int, why: str, signals: Signals, state: ScalingState, policy: ScalingPolicy, now: float
) -> ReplicaPlan:
    """Fewer replicas, down to what the recent peak needs, once nothing blocks a scale-in."""
    current = state.replicas
    wanted = max(policy.serving_min, keep)
    # The peak held over the scale-in delay already waited out the surplus: no cooldown, no steps.
    blockers = [b for b in _scale_down_blockers(signals, state, policy, now) if b != "cooldown"]
    if wanted >= current or blockers:
        return ReplicaPlan(current, "")
    return ReplicaPlan(wanted, f"{wanted} replicas carry the peak: {why}")


def _scale_down_blockers(
    signals: Signals, state: ScalingState, policy: ScalingPolicy, now: float
) -> list[str]:
    """Reasons not to remove a replica now; empty when it is safe."""
    blockers = []
    last_change = state.last_replica_change
    if last_change is not None and now - last_change < policy.scale_down_cooldown_s:
        blockers.append("cooldown")
    # A rolling restart alone does not block: the Deployment scales both ReplicaSets (old pods
    # go first), as it would between restarts; a scale-up still loading does.
    if state.ready_replicas < state.replicas:
        blockers.append("replicas still starting")
    if signals.coverage_s < policy.window_s - 2 * policy.sample_interval_s:
        blockers.append("window too short")
    if signals.preemptions_window > 0:
        blockers.append("preemptions")
    for ratio in (signals.ttft_ratio, signals.itl_ratio):
        if ratio is not None and ratio > policy.near_slo:
            blockers.append("latency")
    return blockers
