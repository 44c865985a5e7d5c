"""`decide`: one control-loop step, a pure function of the window, the state, the policy and now.

    decision = decide(window, state, policy, now)

Order of business: (1) refuse to act on missing, stale or failing metrics; (2) the effective cap,
because it is free and it sets each replica's capacity; (3) the replica count for that capacity;
(4) the engine flag, only on sustained evidence; (5) the engine's token budget, only when the
replicas it saves repay the restart. Bounds hold whatever the metrics say.
"""

from __future__ import annotations

import dataclasses

from thrifty.capacity import RequestMix
from thrifty.control.cap import CapPlan, plan_cap
from thrifty.control.decision import Action, Change, Decision
from thrifty.control.engine_flag import plan_engine
from thrifty.control.idle import idle_reason, last_busy
from thrifty.control.planner import CapacityPlan, plan_capacity, planned_cap
from thrifty.control.policy import ScalingPolicy
from thrifty.control.replicas import plan_replicas
from thrifty.control.signals import Signals, read_signals
from thrifty.control.state import ScalingState
from thrifty.control.token_budget import plan_token_budget
from thrifty.control.window import MetricsWindow
from thrifty.twin.config import EngineConfig

# The action that names a decision with several changes: the one with the largest consequence.
_PRIORITY = (
    Action.SCALE_UP,
    Action.ROLL_MAX_NUM_SEQS,
    Action.ROLL_TOKEN_BUDGET,
    Action.SCALE_DOWN,
    Action.LOWER_CAP,
    Action.RAISE_CAP,
)


def _missing_metrics(
    window: MetricsWindow, signals: Signals, state: ScalingState, policy: ScalingPolicy, now: float
) -> str:
    """Why the window cannot be trusted, in words; empty when it can."""
    if window.errors:
        return "metrics query failed: " + "; ".join(window.errors)
    if not signals.reporting_pods:
        if signals.newest_s is None:
            return "no vLLM samples in the window"
        return f"no vLLM sample newer than {policy.stale_after_s:g}s (newest is {now - signals.newest_s:.0f}s old)"
    if len(signals.reporting_pods) < state.ready_replicas:
        silent = f" (silent: {', '.join(signals.silent_pods)})" if signals.silent_pods else ""
        return f"fresh metrics from {len(signals.reporting_pods)} of {state.ready_replicas} ready replicas{silent}"
    if signals.latency_missing:
        return f"no TTFT or ITL histogram data while {signals.demand_now:.0f} requests are in flight"
    return ""


def _clamped(replicas: int, policy: ScalingPolicy) -> int:
    return max(policy.serving_min, min(policy.max_replicas, replicas))


def _bounded_hold(state: ScalingState, policy: ScalingPolicy, why: str) -> Decision:
    """Hold everything, except that spec bounds always apply (they are the user's, not the data's)."""
    replicas = _clamped(state.replicas, policy)
    changes: tuple[Change, ...] = ()
    action = Action.HOLD
    reason = f"holding: {why}"
    if replicas != state.replicas:
        action = Action.SCALE_UP if replicas > state.replicas else Action.SCALE_DOWN
        bound = f"spec bounds {policy.min_replicas}..{policy.max_replicas}"
        changes = (Change(action, state.replicas, replicas, bound),)
        reason = f"{bound}; otherwise {reason}"
    return Decision(
        replicas=replicas,
        effective_cap=min(state.effective_cap, state.engine_max_num_seqs),
        engine_max_num_seqs=state.engine_max_num_seqs,
        action=action,
        reason=reason,
        changes=changes,
        metrics_available=False,
        engine_max_num_batched_tokens=state.engine_max_num_batched_tokens,
    )


def decide(window: MetricsWindow, state: ScalingState, policy: ScalingPolicy, now: float) -> Decision:
    """The settings to run from `now` on, and why."""
    last_request = last_busy(window, state.last_request, now)
    if state.replicas == 0 and policy.min_replicas == 0:
        # Nothing runs, so nothing reports: the router's wake, not the metrics, brings it back.
        return Decision(
            replicas=0,
            effective_cap=min(state.effective_cap, state.engine_max_num_seqs),
            engine_max_num_seqs=state.engine_max_num_seqs,
            action=Action.STEADY,
            reason="scaled to zero: a request through the router wakes the model",
            last_request=last_request,
            engine_max_num_batched_tokens=state.engine_max_num_batched_tokens,
        )
    return dataclasses.replace(_decide(window, state, policy, now, last_request), last_request=last_request)


def _decide(
    window: MetricsWindow, state: ScalingState, policy: ScalingPolicy, now: float, last_request: float
) -> Decision:
    spec_engine = policy.engine
    running = _running_engine(spec_engine, state)
    if running != spec_engine:
        policy = dataclasses.replace(policy, engine=running)
    signals = read_signals(window, policy, now)
    missing = _missing_metrics(window, signals, state, policy, now)
    if missing:
        return _bounded_hold(state, policy, missing)

    cap_plan = plan_cap(signals, state, policy, now)
    mix = window.mix
    capacity_plan = plan_capacity(signals, policy, mix, now) if mix is not None else None
    rolling = state.rollout_in_progress and spec_engine != running
    if rolling and capacity_plan is not None and mix is not None and spec_engine is not None:
        capacity_plan = _kept_through_the_roll(capacity_plan, signals, policy, spec_engine, mix, now)
    if capacity_plan is not None:
        cap_plan = _cap_from_capacity(cap_plan, capacity_plan, signals, state, policy)
    replica_plan = plan_replicas(signals, state, policy, cap_plan.cap, cap_plan.capacity, now, capacity_plan)
    engine_plan = plan_engine(signals, state, policy, cap_plan, now)

    replicas = _clamped(replica_plan.replicas, policy)
    replica_reason = replica_plan.reason
    idle = idle_reason(window, state, policy, last_request, now)
    if idle:
        replicas, replica_reason = 0, idle
    engine = engine_plan.engine_max_num_seqs
    cap = min(cap_plan.cap, engine) if policy.cap_enforced_by_router else engine
    rolling = engine != state.engine_max_num_seqs
    following = (
        dataclasses.replace(running, max_num_seqs=engine) if running is not None and rolling else running
    )
    budget_plan = plan_token_budget(signals, state, policy, capacity_plan, following, now, rolling=rolling)
    tokens, tokens_reason = budget_plan.tokens, budget_plan.reason
    if tokens is not None and tokens < engine:
        tokens = engine  # vLLM refuses fewer tokens per step than sequences

    changes: list[Change] = []
    if replicas != state.replicas:
        action = Action.SCALE_UP if replicas > state.replicas else Action.SCALE_DOWN
        changes.append(Change(action, state.replicas, replicas, replica_reason or "spec bounds"))
    if engine != state.engine_max_num_seqs:
        changes.append(
            Change(Action.ROLL_MAX_NUM_SEQS, state.engine_max_num_seqs, engine, engine_plan.reason)
        )
    if tokens != state.engine_max_num_batched_tokens and tokens is not None:
        before = state.engine_max_num_batched_tokens or (running.max_num_batched_tokens if running else 0)
        changes.append(Change(Action.ROLL_TOKEN_BUDGET, before, tokens, tokens_reason or engine_plan.reason))
    # Without a router the cap is the engine flag: its roll above already says it all.
    if cap != state.effective_cap and (policy.cap_enforced_by_router or engine == state.engine_max_num_seqs):
        action = Action.RAISE_CAP if cap > state.effective_cap else Action.LOWER_CAP
        changes.append(Change(action, state.effective_cap, cap, cap_plan.reason or engine_plan.reason))

    if not changes:
        return Decision(
            replicas=replicas,
            effective_cap=cap,
            engine_max_num_seqs=engine,
            action=Action.STEADY,
            reason=replica_plan.reason or _steady_reason(signals, state),
            plan=capacity_plan,
            engine_max_num_batched_tokens=tokens,
        )
    changes.sort(key=lambda change: _PRIORITY.index(change.action))
    return Decision(
        replicas=replicas,
        effective_cap=cap,
        engine_max_num_seqs=engine,
        action=changes[0].action,
        reason="; ".join(
            f"{change.action.value} {change.before}->{change.after}: {change.reason}" for change in changes
        ),
        changes=tuple(changes),
        plan=capacity_plan,
        engine_max_num_batched_tokens=tokens,
    )


def _kept_through_the_roll(
    plan: CapacityPlan,
    signals: Signals,
    policy: ScalingPolicy,
    spec_engine: EngineConfig,
    mix: RequestMix,
    now: float,
) -> CapacityPlan:
    """While a rolling restart lasts, pods on the flags before it still serve: a scale-in keeps
    what they would need too. The flags before are taken as the spec's (the loop's rolls start
    from them, and a roll back returns to them), the slower of the two in the common case."""
    before = plan_capacity(signals, dataclasses.replace(policy, engine=spec_engine), mix, now)
    if before is None or before.keep <= plan.keep:
        return plan
    reason = f"{plan.reason}; until the roll ends, pods on the spec's flags ({before.capacity.rate_per_s:.1f} req/s each) need {before.keep}"
    return dataclasses.replace(plan, keep=before.keep, reason=reason)


def _running_engine(config: EngineConfig | None, state: ScalingState) -> EngineConfig | None:
    """The server configuration with the engine flags the pods run now (the loop's own rolls)."""
    if config is None:
        return None
    tokens = state.engine_max_num_batched_tokens or config.max_num_batched_tokens
    if (config.max_num_seqs, config.max_num_batched_tokens) == (state.engine_max_num_seqs, tokens):
        return config
    return dataclasses.replace(config, max_num_seqs=state.engine_max_num_seqs, max_num_batched_tokens=tokens)


def _cap_from_capacity(
    cap_plan: CapPlan, plan: CapacityPlan, signals: Signals, state: ScalingState, policy: ScalingPolicy
) -> CapPlan:
    """With the capacity model, the cap follows the model's occupancy at capacity; preemptions and
    a full KV cache still lower it at once (cap.py), since then the model has the memory wrong."""
    if not policy.tune_max_num_seqs or signals.preemptions_recent > 0 or signals.kv_peak >= policy.kv_high:
        return cap_plan
    current = state.effective_cap
    wanted = planned_cap(plan, policy)
    engine = state.engine_max_num_seqs
    if abs(wanted - current) <= policy.cap_deadband * current:
        return CapPlan(current, "", cap_plan.capacity)
    reason = (
        f"at {plan.capacity.rate_per_s:.1f} req/s a replica runs about {plan.capacity.concurrency:.0f} "
        f"requests; {policy.burst_headroom:g} x their 95th-percentile occupancy"
    )
    if not policy.cap_enforced_by_router:
        return CapPlan(current, reason, cap_plan.capacity, wants_engine=wanted)
    if wanted > engine:
        return CapPlan(engine, reason if current < engine else "", cap_plan.capacity, wants_above_engine=True)
    return CapPlan(wanted, reason, cap_plan.capacity)


def _steady_reason(signals: Signals, state: ScalingState) -> str:
    return (
        f"{signals.demand_now:.0f} requests on {len(signals.reporting_pods)} replicas "
        f"({signals.running_per_replica:.0f} running each, cap {state.effective_cap}) fit"
    )
