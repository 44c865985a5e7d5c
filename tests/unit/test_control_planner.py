"""The capacity planner: replicas from demand over capacity at the SLO, corrected online."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from test_control_windows import NOW, POLICY, STEP, state, window

from thrifty.capacity import LatencySlo, ReplicaModel, RequestMix
from thrifty.control import Action, LatencySample, MetricsWindow, decide, read_signals
from thrifty.control.planner import plan_capacity, step_time_scale
from thrifty.control.signals import TrafficPoint, slope, sure_slope
from thrifty.twin import engine_config_from_vllm_args

CONFIG = engine_config_from_vllm_args(
    {"model": "meta-llama/Llama-3.1-8B-Instruct", "max_model_len": 16384, "enable_prefix_caching": False},
    gpu_product="NVIDIA-H100-80GB-HBM3",
)
MIX = RequestMix.from_requests([400, 800, 1000, 1200, 1600, 3000], [100, 150, 200, 250, 300, 400])
PLANNED = replace(POLICY, engine=CONFIG)
SLO = LatencySlo(2.0, 0.05)
CAPACITY = ReplicaModel(CONFIG).capacity(MIX, SLO).rate_per_s


def traffic_window(
    *, pods: int, arrivals_per_s: float, mean_itl_s: float | None = None, span_s: float = 1800.0
) -> MetricsWindow:
    """Steady traffic: `arrivals_per_s` over `pods` replicas, with the mix above."""
    base = window(pods=pods, running=20, finished_per_s=arrivals_per_s / pods, span_s=span_s)
    latency = tuple(replace(sample, mean_itl_s=mean_itl_s) for sample in base.latency)
    return replace(base, latency=latency, mix=MIX)


def _set_rate(base: MetricsWindow, since: float, arrivals_per_s: float, pods: int) -> MetricsWindow:
    samples = tuple(
        replace(s, finished_per_s=arrivals_per_s / pods) if s.time > since else s for s in base.samples
    )
    return replace(base, samples=samples)


def test_replicas_are_demand_over_planned_capacity() -> None:
    demand = 6 * CAPACITY
    decision = decide(traffic_window(pods=4, arrivals_per_s=demand), state(replicas=4), PLANNED, NOW)

    wanted = math.ceil(demand / (0.99 * CAPACITY * PLANNED.target_batch_utilization))
    assert decision.action is Action.SCALE_UP
    assert decision.replicas in (wanted - 1, wanted)
    assert "req/s within the SLO (ITL p95 binds" in decision.reason
    assert f"demand {demand:.1f} req/s" in decision.reason


def test_a_slower_engine_is_seen_in_its_gaps_and_gets_more_replicas() -> None:
    demand = 4 * CAPACITY
    per_replica = demand / 8
    slow_gap = ReplicaModel(CONFIG, step_time_scale=1.3).predict(MIX, per_replica).mean_itl_s
    nominal = traffic_window(pods=8, arrivals_per_s=demand)
    slowed = traffic_window(pods=8, arrivals_per_s=demand, mean_itl_s=slow_gap)

    scale, minutes = step_time_scale(read_signals(slowed, PLANNED, NOW).traffic, CONFIG, MIX, since=NOW - 600)
    plain = plan_capacity(read_signals(nominal, PLANNED, NOW), PLANNED, MIX, NOW)
    corrected = plan_capacity(read_signals(slowed, PLANNED, NOW), PLANNED, MIX, NOW)

    assert 1.2 < scale < 1.4
    assert minutes >= 5
    assert plain is not None
    assert corrected is not None
    assert corrected.capacity.rate_per_s < 0.85 * plain.capacity.rate_per_s
    assert corrected.replicas > plain.replicas
    assert "step time x1.3" in corrected.reason


def test_scale_in_waits_until_the_peak_of_the_scale_in_delay_has_passed() -> None:
    per_replica = CAPACITY * PLANNED.target_batch_utilization
    high, low = 7.5 * per_replica, 1.5 * per_replica
    # Demand fell two minutes ago: the peak of the last five minutes still needs all 8 replicas.
    recent_drop = _set_rate(traffic_window(pods=8, arrivals_per_s=high), NOW - 120, low, 8)
    held = decide(recent_drop, state(replicas=8), PLANNED, NOW)
    # Six minutes ago: the surplus has outlasted the delay, and the count goes straight to 2.
    old_drop = _set_rate(traffic_window(pods=8, arrivals_per_s=high), NOW - 360, low, 8)
    released = decide(old_drop, state(replicas=8), PLANNED, NOW)

    assert held.replicas == 8
    assert released.action is Action.SCALE_DOWN
    assert released.replicas == 2
    assert "2 replicas carry the peak" in released.reason


def test_no_scale_in_on_missing_metrics_even_with_the_planner() -> None:
    stale = traffic_window(pods=10, arrivals_per_s=0.5)
    stale = replace(stale, samples=tuple(s for s in stale.samples if s.time < NOW - 120))

    decision = decide(stale, state(replicas=10), PLANNED, NOW)

    assert decision.action is Action.HOLD
    assert decision.replicas == 10


def test_the_forecast_only_raises_the_floor() -> None:
    pods = 4
    rising = traffic_window(pods=pods, arrivals_per_s=2 * CAPACITY)
    falling = traffic_window(pods=pods, arrivals_per_s=2 * CAPACITY)
    for minutes_ago in range(5, 0, -1):
        since = NOW - minutes_ago * 60
        rising = _set_rate(rising, since, (2 + 0.2 * (6 - minutes_ago)) * CAPACITY, pods)
        falling = _set_rate(falling, since, (2 - 0.2 * (6 - minutes_ago)) * CAPACITY, pods)

    up = plan_capacity(read_signals(rising, PLANNED, NOW), PLANNED, MIX, NOW)
    down = plan_capacity(read_signals(falling, PLANNED, NOW), PLANNED, MIX, NOW)

    assert up is not None
    assert down is not None
    assert up.forecast_rate > up.demand_rate
    assert down.forecast_rate == down.demand_rate
    assert up.forecast_rate <= PLANNED.forecast_max_growth * up.demand_rate


def test_scale_in_stops_at_what_a_rising_forecast_needs() -> None:
    # Eight replicas for demand that climbs toward four replicas' worth: the peak so far needs
    # fewer than the forecast, and a scale-in to the peak would be taken back at the next step.
    pods = 8
    rising = traffic_window(pods=pods, arrivals_per_s=1.5 * CAPACITY)
    for minutes_ago in range(5, 0, -1):
        rising = _set_rate(rising, NOW - minutes_ago * 60, (1.5 + 0.5 * (6 - minutes_ago)) * CAPACITY, pods)
    plan = plan_capacity(read_signals(rising, PLANNED, NOW), PLANNED, MIX, NOW)

    decision = decide(rising, state(replicas=pods), PLANNED, NOW)

    assert plan is not None
    assert plan.forecast_rate > plan.peak_rate
    assert plan.keep >= plan.replicas
    assert plan.replicas < pods
    assert decision.replicas >= plan.replicas


def test_the_cap_follows_the_occupancy_at_capacity() -> None:
    decision = decide(
        traffic_window(pods=4, arrivals_per_s=2 * CAPACITY), state(replicas=4, cap=8), PLANNED, NOW
    )
    concurrency = ReplicaModel(CONFIG).capacity(MIX, SLO).concurrency

    occupancy = concurrency + 1.645 * math.sqrt(concurrency)
    assert decision.effective_cap > 8
    assert decision.effective_cap == math.ceil(occupancy * PLANNED.burst_headroom) or (
        abs(decision.effective_cap - occupancy * PLANNED.burst_headroom) <= 2
    )


def test_a_replayed_window_gives_the_same_decision() -> None:
    traffic = traffic_window(pods=5, arrivals_per_s=3.3 * CAPACITY, mean_itl_s=0.012)

    first = decide(traffic, state(replicas=5), PLANNED, NOW)
    second = decide(traffic, state(replicas=5), PLANNED, NOW)

    assert first == second


def test_without_a_mix_the_window_estimate_decides() -> None:
    plain = replace(traffic_window(pods=4, arrivals_per_s=2 * CAPACITY), mix=None)

    decision = decide(plain, state(replicas=4), PLANNED, NOW)

    assert "req/s within the SLO" not in decision.reason


def test_latency_samples_carry_the_mean_gap() -> None:
    sample = LatencySample(NOW, 0.3, 0.03, 0.01, mean_itl_s=0.011)
    assert sample.mean_itl_s == 0.011
    assert STEP == 15.0


def _points(scale: float, replicas: list[int], per_replica: float = 8.0) -> tuple[TrafficPoint, ...]:
    """One point every 15 s; each minute's gap is what an engine `scale` times as slow shows at
    `per_replica` requests/s on the replicas of that point."""
    gap = ReplicaModel(CONFIG, step_time_scale=scale).predict(MIX, per_replica).mean_itl_s
    return tuple(
        TrafficPoint(NOW - 15.0 * (len(replicas) - 1 - k), per_replica * n, n, gap)
        for k, n in enumerate(replicas)
    )


def test_the_fit_finds_faster_and_slower_engines_alike() -> None:
    for true in (0.5, 0.7, 1.0, 1.3, 2.0):
        scale, minutes = step_time_scale(_points(true, [4] * 40), CONFIG, MIX, since=NOW - 600)
        assert scale == pytest.approx(true, rel=0.03), true
        assert minutes == 10


def test_minutes_whose_replicas_changed_are_no_evidence() -> None:
    """A scale-in: the last three minutes' points are each within a minute of a change."""
    replicas = [4] * 28 + [3] * 3 + [2] * 3 + [1] * 3 + [1] * 3
    _, all_minutes = step_time_scale(_points(1.0, [4] * 40), CONFIG, MIX, since=NOW - 600)
    _, kept = step_time_scale(_points(1.0, replicas), CONFIG, MIX, since=NOW - 600)
    assert kept < all_minutes


def test_a_trend_counts_only_beyond_its_own_noise() -> None:
    noise = [0.0, 1.2, -0.8, 0.5, -1.1, 0.9, -0.3, 0.7, -0.6, 1.0, -0.9, 0.2]
    flat = [(15.0 * i, 20.0 + e) for i, e in enumerate(noise)]
    ramp = [(15.0 * i, 20.0 + 0.1 * 15.0 * i + e) for i, e in enumerate(noise)]
    clean = [(15.0 * i, 20.0 + 0.1 * 15.0 * i) for i in range(12)]
    after_a_start = [(60.0, 17.0), (75.0, 19.5), (90.0, 18.7)]

    assert slope(flat) != 0.0
    assert sure_slope(flat) == 0.0, "noise around a level is no ramp"
    assert 0.0 < sure_slope(ramp) < slope(ramp)
    assert sure_slope(clean) == pytest.approx(0.1)
    assert sure_slope(after_a_start) == 0.0, "three points are too few to tell a ramp from noise"


def test_a_step_in_the_traffic_counts_at_the_first_scrape_after_it() -> None:
    base = 2 * CAPACITY
    steady = traffic_window(pods=4, arrivals_per_s=base)
    # 300 more requests in flight (held at the router) than a scrape ago: 20/s more arrived over
    # the last 15 s, 5/s more averaged over the minute.
    stepped = replace(steady, router_waiting=((NOW, 300.0),))

    before = plan_capacity(read_signals(steady, PLANNED, NOW), PLANNED, MIX, NOW)
    after = plan_capacity(read_signals(stepped, PLANNED, NOW), PLANNED, MIX, NOW)

    assert before is not None
    assert after is not None
    assert after.demand_rate == pytest.approx(before.demand_rate + 300 / STEP, rel=0.02)
    assert after.replicas > before.replicas


def test_minutes_with_a_backlog_throughout_are_no_step_time_evidence() -> None:
    """Replicas with a backlog at the router serve at their cap: a draining backlog reads as few
    arrivals on busy replicas, which the fit would take for a slow engine."""
    points = _points(1.0, [4] * 40)
    backlog = tuple(replace(p, held=50.0) for p in points)
    # Requests held at one scrape in four are a passing burst, not a backlog.
    passing = tuple(replace(p, held=3.0) if k % 4 == 0 else p for k, p in enumerate(points))

    assert step_time_scale(backlog, CONFIG, MIX, since=NOW - 600) == (1.0, 0)
    assert step_time_scale(passing, CONFIG, MIX, since=NOW - 600)[1] == 10


def test_no_scale_in_while_the_traffic_climbs_out_of_a_quiet_spell() -> None:
    # Eight replicas after a quiet spell; the minute's figure still counts the quiet, and the last
    # scrape interval shows 300 more requests than a scrape ago.
    quiet = traffic_window(pods=8, arrivals_per_s=0.3 * CAPACITY)
    climbing = replace(quiet, router_waiting=((NOW, 300.0),))

    plan = plan_capacity(read_signals(climbing, PLANNED, NOW), PLANNED, MIX, NOW)
    released = decide(quiet, state(replicas=8), PLANNED, NOW)
    held = decide(climbing, state(replicas=8), PLANNED, NOW)

    assert plan is not None
    assert plan.rising
    assert plan.keep < 8, "the premise: what the demand so far needs is fewer than eight"
    assert released.action is Action.SCALE_DOWN
    assert held.replicas == 8


def test_no_scale_in_in_the_minute_after_traffic_resumes() -> None:
    # Eight replicas; the traffic came back half a minute ago, so the minute's figure is half of
    # what arrives now, and what it needs is still fewer than eight.
    per_replica = CAPACITY * PLANNED.target_batch_utilization
    resumed = _set_rate(
        traffic_window(pods=8, arrivals_per_s=0.2 * per_replica), NOW - 30, 3 * per_replica, 8
    )

    plan = plan_capacity(read_signals(resumed, PLANNED, NOW), PLANNED, MIX, NOW)
    held = decide(resumed, state(replicas=8), PLANNED, NOW)

    assert plan is not None
    assert plan.rising
    assert plan.keep < 8
    assert held.replicas == 8


def test_scale_in_keeps_what_a_climb_within_the_noise_needs() -> None:
    # Two windows ending at the same demand and peak: one level, one climbing in zig-zags too noisy
    # for the forecast (its sure slope is nil). A scale-in keeps a replica more for the climb.
    per_replica = CAPACITY * PLANNED.target_batch_utilization
    level = traffic_window(pods=8, arrivals_per_s=3.85 * per_replica)
    zigzag = traffic_window(pods=8, arrivals_per_s=2.0 * per_replica)
    for index, share in enumerate([2.9, 3.6, 3.0, 3.7, 3.2, 3.85]):
        zigzag = _set_rate(zigzag, NOW - (6 - index) * 60, share * per_replica, 8)
    points = [
        (p.time, p.arrivals_per_s) for p in read_signals(zigzag, PLANNED, NOW).traffic if p.time > NOW - 300
    ]

    flat_plan = plan_capacity(read_signals(level, PLANNED, NOW), PLANNED, MIX, NOW)
    climb_plan = plan_capacity(read_signals(zigzag, PLANNED, NOW), PLANNED, MIX, NOW)
    flat = decide(level, state(replicas=8), PLANNED, NOW)
    climb = decide(zigzag, state(replicas=8), PLANNED, NOW)

    assert sure_slope(points) == 0.0
    assert climb_plan is not None
    assert flat_plan is not None
    assert climb_plan.peak_rate == pytest.approx(flat_plan.peak_rate)
    assert climb_plan.forecast_rate == pytest.approx(flat_plan.forecast_rate)
    assert (flat.action, flat.replicas) == (Action.SCALE_DOWN, 4)
    assert (climb.action, climb.replicas) == (Action.SCALE_DOWN, 5)
    assert "the trend alone" in climb.reason


def test_a_rolling_restart_does_not_hold_a_scale_in() -> None:
    per_replica = CAPACITY * PLANNED.target_batch_utilization
    old_drop = _set_rate(
        traffic_window(pods=8, arrivals_per_s=7.5 * per_replica), NOW - 360, 1.5 * per_replica, 8
    )

    rolling = decide(old_drop, state(replicas=8, rollout_in_progress=True), PLANNED, NOW)
    loading = decide(old_drop, state(replicas=8, ready=6), PLANNED, NOW)

    assert (rolling.action, rolling.replicas) == (Action.SCALE_DOWN, 2)
    assert loading.replicas == 8, "a scale-up still loading does hold it"


def test_a_scale_in_during_a_roll_keeps_what_the_pods_not_yet_rolled_need() -> None:
    # The pods are rolling to 768 tokens per step, on which a replica carries about a third more
    # of this mix than on the spec's 8192; until the roll ends, pods on 8192 still serve.
    per_replica = CAPACITY * PLANNED.target_batch_utilization
    old_drop = _set_rate(
        traffic_window(pods=8, arrivals_per_s=7.5 * per_replica), NOW - 360, 2.2 * per_replica, 8
    )
    rolled = replace(state(replicas=8), engine_max_num_batched_tokens=768)

    during = decide(old_drop, replace(rolled, rollout_in_progress=True), PLANNED, NOW)
    after = decide(old_drop, rolled, PLANNED, NOW)

    assert (during.action, during.replicas) == (Action.SCALE_DOWN, 3)
    assert "until the roll ends, pods on the spec's flags" in during.reason
    assert (after.action, after.replicas) == (Action.SCALE_DOWN, 2)
