"""The engine's --max-num-seqs: moved only by a rolling restart, so rarely and only on sustained
evidence.

Behind Thrifty's router the flag is an upper bound for the free effective cap, and it rises when
the estimated capacity has exceeded what the flag allows (by the engine deadband) both now and one
scale-down window ago. It is
never lowered there: the router's cap already keeps replicas below it. Without a router the flag
is the cap, so every cap move the policy wants becomes a roll, after the rollout cooldown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from thrifty.control.cap import CapPlan, estimate_capacity
from thrifty.control.policy import ScalingPolicy
from thrifty.control.signals import Signals
from thrifty.control.state import ScalingState


@dataclass(frozen=True, slots=True)
class EnginePlan:
    engine_max_num_seqs: int
    reason: str
    """Why it rolls; empty when it does not."""


def _rounded_up(value: float, granularity: int) -> int:
    return int(math.ceil(value / granularity) * granularity)


def plan_engine(
    signals: Signals, state: ScalingState, policy: ScalingPolicy, cap_plan: CapPlan, now: float
) -> EnginePlan:
    engine = state.engine_max_num_seqs
    if not policy.tune_max_num_seqs or state.rollout_in_progress:
        return EnginePlan(engine, "")
    if state.last_rollout is not None and now - state.last_rollout < policy.rollout_cooldown_s:
        return EnginePlan(engine, "")

    if not policy.cap_enforced_by_router:
        wanted = cap_plan.wants_engine
        if wanted is None or wanted == engine:
            return EnginePlan(engine, "")
        target = min(policy.max_num_seqs_max, max(policy.max_num_seqs_min, wanted))
        return EnginePlan(
            target, f"no router enforces a cap, so the engine flag itself moves: {cap_plan.reason}"
        )

    if not cap_plan.wants_above_engine or engine >= policy.max_num_seqs_max:
        return EnginePlan(engine, "")
    if state.replicas <= policy.serving_min:
        return EnginePlan(engine, "")  # one replica more or less costs nothing a roll would save
    # Sustained: the cap asked now and a `window_s` ago both exceed the flag by the deadband.
    limit = engine * (1 + policy.engine_deadband) / policy.burst_headroom
    earlier = estimate_capacity(signals, policy, now - policy.window_s)
    capacity = cap_plan.capacity
    long_enough = signals.coverage_s >= policy.window_s - 2 * policy.sample_interval_s
    if (
        capacity is None
        or not capacity.known
        or capacity.requests < limit
        or earlier is None
        or not earlier.known
        or earlier.requests < limit
        or not long_enough
    ):
        return EnginePlan(engine, "")
    target = min(policy.max_num_seqs_max, _rounded_up(engine * policy.engine_step, policy.engine_granularity))
    reason = (
        f"for {policy.window_s:g}s a replica could carry about {capacity.requests:.0f} requests within the "
        f"SLOs ({capacity.basis}), so the cap would pass the engine flag {engine}"
    )
    return EnginePlan(target, reason)
