"""The loop's choice of --max-num-batched-tokens: the capacity model's best budget for the window's
mix, rolled only at a period start, outside cooldowns, and when the replicas saved repay the roll."""

from __future__ import annotations

from dataclasses import replace

from test_control_planner import CONFIG, MIX, SLO
from test_control_windows import POLICY, STEP, state, window

from thrifty.capacity import ReplicaModel, best_token_budget
from thrifty.control import Action, Decision, MetricsWindow, decide, read_signals
from thrifty.control.planner import plan_capacity
from thrifty.control.state import ScalingState
from thrifty.control.token_budget import plan_token_budget

PERIOD_START = 34 * POLICY.window_s
"""A multiple of the window: the loop weighs the budget at the first step of each period."""
TUNED = replace(POLICY, engine=CONFIG, tune_token_budget=True)
CAPACITY = ReplicaModel(replace(CONFIG, max_num_seqs=256)).capacity(MIX, SLO).rate_per_s


def _window(*, pods: int, demand: float, now: float) -> MetricsWindow:
    base = window(pods=pods, running=20, finished_per_s=demand / pods, now=now)
    return replace(base, mix=MIX)


def _decide(state_: ScalingState, *, demand: float, now: float = PERIOD_START) -> Decision:
    return decide(_window(pods=state_.replicas, demand=demand, now=now), state_, TUNED, now)


def _rolls(decision: Decision) -> list[int]:
    return [change.after for change in decision.changes if change.action is Action.ROLL_TOKEN_BUDGET]


def test_a_busy_fleet_rolls_to_the_budget_with_the_most_capacity_and_says_what_it_saves() -> None:
    best = best_token_budget(replace(CONFIG, max_num_seqs=256), MIX, SLO)
    assert best.tokens < CONFIG.max_num_batched_tokens  # the premise: long prompts, a tight ITL objective

    decision = _decide(state(replicas=8), demand=6 * CAPACITY)

    assert _rolls(decision) == [best.tokens]
    assert decision.engine_max_num_batched_tokens == best.tokens
    assert f"with {best.tokens} tokens per step" in decision.reason
    assert "repay the roll (8 x 120s of start-up)" in decision.reason


def test_the_budget_is_weighed_only_in_the_steps_just_after_a_period_boundary() -> None:
    late = _decide(state(replicas=8), demand=6 * CAPACITY, now=PERIOD_START + STEP)
    assert _rolls(late)  # a step that comes a little late still counts
    decision = _decide(state(replicas=8), demand=6 * CAPACITY, now=PERIOD_START + 2 * STEP)
    assert _rolls(decision) == []
    assert decision.engine_max_num_batched_tokens is None


def test_no_roll_while_one_runs_or_within_the_rollout_cooldown() -> None:
    rolling = _decide(state(replicas=8, rollout_in_progress=True), demand=6 * CAPACITY)
    recent = _decide(state(replicas=8, last_rollout=PERIOD_START - 60), demand=6 * CAPACITY)
    assert _rolls(rolling) == []
    assert _rolls(recent) == []


def test_a_pinned_budget_is_left_alone() -> None:
    pinned = replace(TUNED, tune_token_budget=False)
    decision = decide(
        _window(pods=8, demand=6 * CAPACITY, now=PERIOD_START), state(replicas=8), pinned, PERIOD_START
    )
    assert _rolls(decision) == []


def test_a_replica_that_stays_the_only_one_saves_nothing_and_does_not_roll() -> None:
    decision = _decide(state(replicas=1), demand=0.3 * CAPACITY)
    assert _rolls(decision) == []


def test_after_the_roll_the_chosen_budget_stays() -> None:
    first = _decide(state(replicas=8), demand=6 * CAPACITY)
    rolled = replace(state(replicas=8), engine_max_num_batched_tokens=first.engine_max_num_batched_tokens)
    later = _decide(rolled, demand=6 * CAPACITY, now=PERIOD_START + 3 * TUNED.window_s)
    assert _rolls(later) == []
    assert later.engine_max_num_batched_tokens == first.engine_max_num_batched_tokens


def test_when_the_pods_roll_anyway_the_budget_rides_along_without_waiting() -> None:
    now = PERIOD_START + 2 * STEP  # not a period start, and a roll just ended
    busy = state(replicas=8, last_rollout=now - 60)
    signals = read_signals(_window(pods=8, demand=6 * CAPACITY, now=now), TUNED, now)
    config = replace(CONFIG, max_num_seqs=256)
    plan = plan_capacity(signals, replace(TUNED, engine=config), MIX, now)

    alone = plan_token_budget(signals, busy, TUNED, plan, config, now)
    riding = plan_token_budget(signals, busy, TUNED, plan, config, now, rolling=True)

    assert alone.tokens is None
    assert riding.tokens == best_token_budget(config, MIX, SLO).tokens
    assert riding.reason.startswith("the pods roll anyway")


def test_no_roll_while_a_backlog_lasts_at_the_router() -> None:
    """Replicas at their cap with a backlog held at the router: the mix and step time read there
    are no steady state to choose a budget for. Requests waiting in the engines (for their prefill
    chunk, with long prompts) are normal operation and do not hold it."""
    calm = _window(pods=8, demand=6 * CAPACITY, now=PERIOD_START)
    times = sorted({sample.time for sample in calm.samples})[-6:]
    backlog = replace(calm, router_waiting=tuple((time, 80.0) for time in times))

    engine_queue = replace(calm, samples=tuple(replace(s, waiting=6) for s in calm.samples))

    assert _rolls(decide(calm, state(replicas=8), TUNED, PERIOD_START))
    assert _rolls(decide(engine_queue, state(replicas=8), TUNED, PERIOD_START))
    assert _rolls(decide(backlog, state(replicas=8), TUNED, PERIOD_START)) == []
