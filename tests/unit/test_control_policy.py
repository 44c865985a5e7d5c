"""The control policy's decisions, case by case (the property tests are in test_control_properties)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from test_control_windows import NOW, POLICY, state, window, with_last_minutes

from thrifty.api import ScalingDecision, ScalingSpec
from thrifty.control import Action, MetricsWindow, ScalingPolicy, decide, last_actions, policy_from_spec
from thrifty.control.cap import estimate_capacity
from thrifty.control.signals import read_signals

# ---- missing, stale or failing metrics ----


def test_holds_and_says_so_without_any_sample() -> None:
    decision = decide(MetricsWindow(start=NOW - 1800, end=NOW), state(replicas=5), POLICY, NOW)

    assert decision.action is Action.HOLD
    assert decision.replicas == 5
    assert not decision.metrics_available
    assert "no vLLM samples in the window" in decision.reason


def test_holds_on_stale_metrics_even_when_demand_looks_tiny() -> None:
    stale = window(running=0.5, slow_share=0.0, newest_age_s=POLICY.stale_after_s + 30)

    decision = decide(stale, state(replicas=8), POLICY, NOW)

    assert decision.action is Action.HOLD
    assert decision.replicas == 8
    assert "no vLLM sample newer than 45s" in decision.reason


def test_holds_while_a_ready_replica_reports_nothing() -> None:
    decision = decide(window(pods=3, running=1), state(replicas=4), POLICY, NOW)

    assert decision.action is Action.HOLD
    assert decision.replicas == 4
    assert "fresh metrics from 3 of 4 ready replicas" in decision.reason


def test_holds_on_a_failed_query() -> None:
    failed = replace(
        window(running=1), errors=("itl_p95 from http://prometheus:9090: ConnectionError: refused",)
    )

    decision = decide(failed, state(replicas=6), POLICY, NOW)

    assert decision.action is Action.HOLD
    assert "metrics query failed: itl_p95" in decision.reason


def test_holds_when_traffic_flows_but_no_latency_histogram_answers() -> None:
    blind = window(ttft_s=None, itl_s=None, slow_share=None)
    blind = replace(blind, latency=())

    decision = decide(blind, state(), POLICY, NOW)

    assert decision.action is Action.HOLD
    assert "no TTFT or ITL histogram data" in decision.reason


def test_spec_bounds_hold_even_while_metrics_are_missing() -> None:
    empty = MetricsWindow(start=NOW - 1800, end=NOW)
    bounded = replace(POLICY, min_replicas=2, max_replicas=6)

    below = decide(empty, state(replicas=1), bounded, NOW)
    above = decide(empty, state(replicas=9), bounded, NOW)

    assert (below.replicas, below.action) == (2, Action.SCALE_UP)
    assert (above.replicas, above.action) == (6, Action.SCALE_DOWN)
    assert "spec bounds 2..6" in below.reason
    assert not below.metrics_available


# ---- replicas ----


def test_scales_out_when_the_queue_cannot_drain_within_the_ttft_slo() -> None:
    queued = with_last_minutes(window(pods=4, running=40, slow_share=0.03), 1, waiting=30.0)

    decision = decide(queued, state(replicas=4, cap=64), POLICY, NOW)

    assert decision.action is Action.SCALE_UP
    assert decision.replicas > 4
    assert "queued must drain" in decision.reason or "requests in flight" in decision.reason


def test_scales_out_ahead_of_a_rising_demand() -> None:
    rising = window(pods=4, running=20, slow_share=0.02)
    samples = tuple(
        replace(sample, running=10 + 30 * (sample.time - (NOW - 300)) / 300)
        if sample.time > NOW - 300
        else sample
        for sample in rising.samples
    )

    decision = decide(replace(rising, samples=samples), state(replicas=4, cap=64), POLICY, NOW)

    assert decision.action is Action.SCALE_UP
    assert "expected once a new replica serves" in decision.reason


def test_scale_up_waits_for_its_cooldown() -> None:
    queued = with_last_minutes(window(pods=4, running=40), 1, waiting=30.0)

    decision = decide(queued, state(replicas=4, last_scale_up=NOW - 30), POLICY, NOW)

    assert decision.replicas == 4


def test_scale_up_adds_at_most_double_or_four_replicas_at_once() -> None:
    flood = with_last_minutes(window(pods=2, running=40), 1, waiting=500.0)

    decision = decide(flood, state(replicas=2, cap=64), POLICY, NOW)

    assert decision.replicas == 2 + 4


def test_scales_in_after_a_sustained_surplus_by_at_most_a_quarter() -> None:
    quiet = window(pods=12, running=6, slow_share=0.004, itl_s=0.01)

    decision = decide(quiet, state(replicas=12, cap=64, last_scale_down=NOW - 600), POLICY, NOW)

    assert decision.action is Action.SCALE_DOWN
    assert decision.replicas == 9
    assert "suffice" in decision.reason


def test_scale_down_waits_for_its_cooldown_after_any_replica_change() -> None:
    quiet = window(pods=12, running=6, slow_share=0.004, itl_s=0.01)

    after_up = decide(quiet, state(replicas=12, cap=64, last_scale_up=NOW - 200), POLICY, NOW)
    after_down = decide(quiet, state(replicas=12, cap=64, last_scale_down=NOW - 200), POLICY, NOW)

    assert after_up.replicas == 12
    assert after_down.replicas == 12


def test_no_scale_down_on_less_than_a_full_window_of_history() -> None:
    young = window(pods=12, running=6, slow_share=0.004, itl_s=0.01, span_s=120)

    decision = decide(young, state(replicas=12, cap=64), POLICY, NOW)

    assert decision.replicas == 12


def test_no_scale_down_while_replicas_are_still_starting() -> None:
    quiet = window(pods=10, running=6, slow_share=0.004, itl_s=0.01)

    decision = decide(quiet, state(replicas=12, ready=10, cap=64), POLICY, NOW)

    assert decision.replicas == 12


def test_no_scale_down_while_latency_is_near_its_slo() -> None:
    near = window(pods=12, running=6, slow_share=0.004, itl_s=0.045)

    decision = decide(near, state(replicas=12, cap=64), POLICY, NOW)

    assert decision.replicas == 12


# ---- the effective cap and the engine flag ----


def test_lowers_the_cap_at_once_on_preemptions() -> None:
    preempting = with_last_minutes(window(pods=4, running=50), 1, preemptions=3.0)

    decision = decide(preempting, state(replicas=4, cap=96, last_cap_change=NOW - 5), POLICY, NOW)

    assert decision.effective_cap == 45
    assert any(change.action is Action.LOWER_CAP for change in decision.changes)
    assert "preemptions" in decision.reason


def test_lowers_the_cap_on_kv_exhaustion() -> None:
    full = with_last_minutes(window(pods=4, running=50), 1, kv_cache_usage=0.97)

    decision = decide(full, state(replicas=4, cap=96), POLICY, NOW)

    assert decision.effective_cap < 50
    assert "KV cache 0.97" in decision.reason


def test_raises_the_cap_when_slow_gaps_leave_room() -> None:
    roomy = window(pods=4, running=30, slow_share=0.02, itl_s=0.02)

    decision = decide(roomy, state(replicas=4, cap=40), POLICY, NOW)

    assert decision.effective_cap > 40
    assert any(change.action is Action.RAISE_CAP for change in decision.changes)
    assert "share of slow inter-token gaps" in decision.reason


def test_cap_raises_wait_one_latency_window() -> None:
    roomy = window(pods=4, running=30, slow_share=0.02, itl_s=0.02)

    decision = decide(roomy, state(replicas=4, cap=40, last_cap_change=NOW - 20), POLICY, NOW)

    assert decision.effective_cap == 40


def test_cap_stays_within_the_engine_flag_behind_the_router() -> None:
    roomy = window(pods=4, running=200, slow_share=0.005, itl_s=0.02, kv=0.3)

    decision = decide(roomy, state(replicas=4, engine=256, cap=250), POLICY, NOW)

    assert decision.effective_cap <= decision.engine_max_num_seqs


def test_rolls_the_engine_flag_only_on_sustained_need_and_after_its_cooldown() -> None:
    # Replicas carry 200 with few slow gaps: the cap would pass the engine flag of 256.
    pinned = window(pods=4, running=200, slow_share=0.02, itl_s=0.02, kv=0.3)

    rolled = decide(pinned, state(replicas=4, engine=256, cap=256), POLICY, NOW)
    cooling = decide(pinned, state(replicas=4, engine=256, cap=256, last_rollout=NOW - 300), POLICY, NOW)
    rolling = decide(pinned, state(replicas=4, engine=256, cap=256, rollout_in_progress=True), POLICY, NOW)

    assert rolled.engine_max_num_seqs == 384
    assert any(change.action is Action.ROLL_MAX_NUM_SEQS for change in rolled.changes)
    assert cooling.engine_max_num_seqs == 256
    assert rolling.engine_max_num_seqs == 256


def test_without_a_router_a_cap_change_is_a_rolling_restart() -> None:
    no_router = replace(POLICY, cap_enforced_by_router=False)
    preempting = with_last_minutes(window(pods=4, running=50), 1, preemptions=3.0)

    decision = decide(preempting, state(replicas=4, engine=64, cap=64), no_router, NOW)

    rolls = [change for change in decision.changes if change.action is Action.ROLL_MAX_NUM_SEQS]
    assert [(roll.before, roll.after) for roll in rolls] == [(64, 45)]
    assert decision.effective_cap == decision.engine_max_num_seqs == 45
    assert not any(change.action is Action.LOWER_CAP for change in decision.changes)


def test_cap_and_engine_stay_put_when_tuning_is_off() -> None:
    fixed = replace(POLICY, tune_max_num_seqs=False)
    preempting = with_last_minutes(window(pods=4, running=50), 1, preemptions=3.0)

    decision = decide(preempting, state(replicas=4, engine=128, cap=128), fixed, NOW)

    assert (decision.effective_cap, decision.engine_max_num_seqs) == (128, 128)


# ---- the capacity estimate ----


def test_capacity_from_slow_gaps_extrapolates_with_the_policy_exponent() -> None:
    signals = read_signals(window(pods=4, running=30, slow_share=0.02), POLICY, NOW)

    capacity = estimate_capacity(signals, POLICY, NOW)

    assert capacity is not None
    assert capacity.known
    assert capacity.requests == pytest.approx(30 * (0.05 / 0.02) ** (1 / 1.5))


def test_capacity_goes_at_most_probe_limit_beyond_a_load_that_held() -> None:
    signals = read_signals(window(pods=4, running=10, slow_share=0.0005), POLICY, NOW)

    capacity = estimate_capacity(signals, POLICY, NOW)

    assert capacity is not None
    assert capacity.requests == pytest.approx(10 * POLICY.probe_limit)


def test_capacity_is_bounded_by_kv_usage() -> None:
    signals = read_signals(window(pods=4, running=40, slow_share=0.01, kv=0.8), POLICY, NOW)

    capacity = estimate_capacity(signals, POLICY, NOW)

    assert capacity is not None
    assert capacity.requests == pytest.approx(40 * POLICY.kv_raise_below / 0.8)
    assert capacity.basis == "KV-cache usage"


# ---- determinism, restarts, the spec ----


def test_a_replayed_window_gives_the_same_decision() -> None:
    busy = with_last_minutes(window(pods=4, running=45, slow_share=0.06, itl_s=0.06), 2, waiting=12.0)
    current = state(replicas=4, cap=90)

    first = decide(busy, current, POLICY, NOW)
    again = decide(busy, current, POLICY, NOW)

    assert first == again
    assert first.changes


def test_last_actions_restores_cooldowns_from_the_status_history() -> None:
    def entry(minute: int, action: str) -> ScalingDecision:
        return ScalingDecision.model_validate(
            {"time": datetime(2026, 1, 1, 12, minute, tzinfo=UTC), "action": action, "from": 1, "to": 2}
        )

    history = [entry(5, "ScaleUp"), entry(9, "ScaleUp"), entry(7, "LowerMaxNumSeqs"), entry(3, "ScaleDown")]

    restored = last_actions(history)

    assert restored.scale_up == datetime(2026, 1, 1, 12, 9, tzinfo=UTC).timestamp()
    assert restored.scale_down == datetime(2026, 1, 1, 12, 3, tzinfo=UTC).timestamp()
    assert restored.cap_change == datetime(2026, 1, 1, 12, 7, tzinfo=UTC).timestamp()
    assert restored.rollout is None


def test_policy_from_spec_maps_the_scaling_spec() -> None:
    spec = ScalingSpec.model_validate(
        {
            "replicas": {"min": 2, "max": 12},
            "targetBatchUtilization": 0.7,
            "slo": {"ttftP95": "1500ms", "itlP95": "40ms"},
            "tuneMaxNumSeqs": {"enabled": True, "min": 16, "max": 512},
            "cooldowns": {"scaleUp": "30s", "scaleDown": "10m", "maxNumSeqsRollout": "20m"},
        }
    )

    policy = policy_from_spec(spec, engine_max_num_seqs=256, behind_router=False, sample_interval_s=5)

    assert policy == ScalingPolicy(
        min_replicas=2,
        max_replicas=12,
        target_batch_utilization=0.7,
        ttft_p95_slo_s=1.5,
        itl_p95_slo_s=0.04,
        tune_max_num_seqs=True,
        max_num_seqs_min=16,
        max_num_seqs_max=512,
        cap_enforced_by_router=False,
        scale_up_cooldown_s=30,
        scale_down_cooldown_s=600,
        rollout_cooldown_s=1200,
        sample_interval_s=5,
    )


def test_policy_without_tuning_pins_the_cap_to_the_engine_flag() -> None:
    spec = ScalingSpec.model_validate({"replicas": {"max": 3}})

    policy = policy_from_spec(spec, engine_max_num_seqs=128, behind_router=True)

    assert not policy.tune_max_num_seqs
    assert (policy.max_num_seqs_min, policy.max_num_seqs_max) == (128, 128)
    assert policy.itl_p95_slo_s is None


def test_policy_refuses_bounds_the_wrong_way_round() -> None:
    with pytest.raises(ValueError, match=r"min \(5\) <= max \(3\)"):
        ScalingPolicy(min_replicas=5, max_replicas=3)
