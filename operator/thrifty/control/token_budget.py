"""The engine's --max-num-batched-tokens: chosen by the capacity model for the observed mix, and
moved (a rolling restart with a surge) only when the replicas it saves repay the restart.

- Which budget: `thrifty.capacity.best_token_budget` over the window's mix, on the engine as it
  runs (step time corrected online), so the same model that sizes the fleet picks the budget.
- When: at most once per `window_s` (the first step of each period of that length, so replaying
  a window gives the same answer), after `rollout_cooldown_s` since the last roll, never during
  one, and only with a full window of traffic behind the mix.
- Whether: the new budget must carry `cap_deadband` more per replica (less is within what the
  mix's noise moves), and the replicas it saves at the demand the planner holds capacity for
  (the higher of the recent peak and the forecast), kept for `evidence_s`, must outweigh the
  replica-seconds a surge roll spends loading new pods (every replica once, `startup_s` each).
  A saving expected to last as long as the evidence for it is the same bet the scale-in delay
  makes.

Only where spec.batching.maxNumBatchedTokens is unset (a value there is the user's) and the loop
tunes the engine (spec.scaling.tuneMaxNumSeqs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from thrifty.capacity import best_token_budget
from thrifty.control.planner import CapacityPlan, capacity_at
from thrifty.control.policy import ScalingPolicy
from thrifty.control.signals import Signals
from thrifty.control.state import ScalingState
from thrifty.twin.config import EngineConfig


@dataclass(frozen=True, slots=True)
class BudgetPlan:
    tokens: int | None
    """The budget the pods should run; None: no flag (vLLM's default for the GPU)."""
    reason: str
    """Why it rolls, with figures; empty when it does not."""


def _period_start(now: float, policy: ScalingPolicy) -> bool:
    """The first step at or after a multiple of `window_s`."""
    return math.floor(now / policy.window_s) != math.floor((now - policy.sample_interval_s) / policy.window_s)


def plan_token_budget(
    signals: Signals,
    state: ScalingState,
    policy: ScalingPolicy,
    plan: CapacityPlan | None,
    config: EngineConfig | None,
    now: float,
) -> BudgetPlan:
    keep = BudgetPlan(state.engine_max_num_batched_tokens, "")
    if not policy.tune_token_budget or plan is None or config is None or state.rollout_in_progress:
        return keep
    if state.last_rollout is not None and now - state.last_rollout < policy.rollout_cooldown_s:
        return keep
    if signals.coverage_s < policy.window_s - 2 * policy.sample_interval_s or not _period_start(now, policy):
        return keep
    scale, mix, slo = plan.step_time_scale, plan.mix, plan.slo
    choice = best_token_budget(
        config, mix, slo, capacity_of=lambda candidate: capacity_at(candidate, scale, mix, slo)
    )
    if choice.tokens == choice.current_tokens or choice.gain < policy.cap_deadband:
        return keep
    share = policy.target_batch_utilization
    demand = max(plan.peak_rate, plan.forecast_rate)
    before = max(policy.serving_min, demand / (choice.current.rate_per_s * share))
    after = max(policy.serving_min, demand / (choice.capacity.rate_per_s * share))
    saved = before - after
    cost = max(1, state.replicas) * policy.startup_s
    if saved * policy.evidence_s < cost:
        return keep
    reason = (
        f"with {choice.tokens} tokens per step a replica sustains {choice.capacity.rate_per_s:.1f} req/s "
        f"within the SLO ({choice.capacity.binding} binds) against {choice.current.rate_per_s:.1f} with "
        f"{choice.current_tokens} (+{choice.gain:.0%}); at {demand:.1f} req/s that is {saved:.1f} replicas "
        f"fewer, which repay the roll ({max(1, state.replicas)} x {policy.startup_s:g}s of start-up) in "
        f"{cost / saved:.0f}s"
    )
    return BudgetPlan(choice.tokens, reason)
