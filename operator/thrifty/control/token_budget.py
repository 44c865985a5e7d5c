"""The engine's --max-num-batched-tokens: chosen by the capacity model for the observed mix, and
moved (a rolling restart with a surge) only when the replicas it saves repay the restart.

- Which budget: `thrifty.capacity.best_token_budget` over the window's mix, on the engine as it
  runs (step time corrected online), so the same model that sizes the fleet picks the budget.
- When: about once per `window_s` (the steps within one and a half scrape intervals after each
  multiple of it, so a late step still counts and replaying a window gives the same answer),
  after `rollout_cooldown_s` since the last roll, never during one, and only with a full window
  of traffic behind the mix. When the pods roll anyway (a new --max-num-seqs, as happens often
  without a router, where that flag is the cap), the budget rides along: no wait and no cost.
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
    """A step within 1.5 scrape intervals after a multiple of `window_s` (a loop step may come a
    little late; a second step in the span asks the cached model the same question)."""
    lag = 1.5 * policy.sample_interval_s
    return math.floor(now / policy.window_s) != math.floor((now - lag) / policy.window_s)


def plan_token_budget(
    signals: Signals,
    state: ScalingState,
    policy: ScalingPolicy,
    plan: CapacityPlan | None,
    config: EngineConfig | None,
    now: float,
    *,
    rolling: bool = False,
) -> BudgetPlan:
    """`config`: the server as the next pods would start it; `rolling`: they roll anyway."""
    keep = BudgetPlan(state.engine_max_num_batched_tokens, "")
    if not policy.tune_token_budget or plan is None or config is None:
        return keep
    if signals.coverage_s < policy.window_s - 2 * policy.sample_interval_s:
        return keep
    recent = signals.traffic[-policy.sustained_scrapes :]
    if recent and all(point.held > 0 for point in recent):
        # A lasting backlog at the router: the replicas run at their cap, and the mix and step
        # time read there are not the steady state a budget is chosen for.
        return keep
    if not rolling and (
        state.rollout_in_progress
        or (state.last_rollout is not None and now - state.last_rollout < policy.rollout_cooldown_s)
        or not _period_start(now, policy)
    ):
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
    cost = 0.0 if rolling else max(1, state.replicas) * policy.startup_s
    if saved <= 0 or saved * policy.evidence_s < cost:
        return keep
    if rolling:
        return BudgetPlan(
            choice.tokens,
            f"the pods roll anyway, and with {choice.tokens} tokens per step a replica sustains "
            f"{choice.capacity.rate_per_s:.1f} req/s within the SLO against {choice.current.rate_per_s:.1f} "
            f"with {choice.current_tokens} (+{choice.gain:.0%}): {saved:.1f} replicas fewer at {demand:.1f} req/s",
        )
    reason = (
        f"with {choice.tokens} tokens per step a replica sustains {choice.capacity.rate_per_s:.1f} req/s "
        f"within the SLO ({choice.capacity.binding} binds) against {choice.current.rate_per_s:.1f} with "
        f"{choice.current_tokens} (+{choice.gain:.0%}); at {demand:.1f} req/s that is {saved:.1f} replicas "
        f"fewer, which repay the roll ({max(1, state.replicas)} x {policy.startup_s:g}s of start-up) in "
        f"{cost / saved:.0f}s"
    )
    return BudgetPlan(choice.tokens, reason)
