"""Window builders shared by the control tests, and the tests of what the policy reads off a window."""

from __future__ import annotations

from dataclasses import replace

from thrifty.control import (
    LatencySample,
    MetricsWindow,
    ReplicaSample,
    ScalingPolicy,
    ScalingState,
    read_signals,
)

NOW = 10_000.0
STEP = 15.0

POLICY = ScalingPolicy(
    min_replicas=1,
    max_replicas=16,
    ttft_p95_slo_s=2.0,
    itl_p95_slo_s=0.05,
    tune_max_num_seqs=True,
    max_num_seqs_min=8,
    max_num_seqs_max=1024,
)


def window(
    *,
    pods: int = 4,
    running: float = 30.0,
    waiting: float = 0.0,
    kv: float = 0.2,
    preemptions: float = 0.0,
    finished_per_s: float | None = 6.0,
    ttft_s: float | None = 0.3,
    itl_s: float | None = 0.03,
    slow_share: float | None = 0.02,
    span_s: float = 1800.0,
    newest_age_s: float = 0.0,
    now: float = NOW,
) -> MetricsWindow:
    """`pods` replicas with steady gauges every 15 s over `span_s`, the newest `newest_age_s` old."""
    end = now - newest_age_s
    times = [end - STEP * k for k in range(int(span_s / STEP))][::-1]
    samples = tuple(
        ReplicaSample(
            pod=f"pod-{index}",
            time=time,
            running=running,
            waiting=waiting,
            kv_cache_usage=kv,
            preemptions=preemptions,
            finished_per_s=finished_per_s,
        )
        for time in times
        for index in range(pods)
    )
    latency = tuple(LatencySample(time, ttft_s, itl_s, slow_share) for time in times)
    return MetricsWindow(start=now - span_s, end=now, samples=samples, latency=latency)


def state(
    *,
    replicas: int = 4,
    ready: int | None = None,
    engine: int = 256,
    cap: int = 64,
    last_scale_up: float | None = None,
    last_scale_down: float | None = None,
    last_rollout: float | None = None,
    last_cap_change: float | None = None,
    rollout_in_progress: bool = False,
) -> ScalingState:
    return ScalingState(
        replicas=replicas,
        ready_replicas=replicas if ready is None else ready,
        engine_max_num_seqs=engine,
        effective_cap=cap,
        last_scale_up=last_scale_up,
        last_scale_down=last_scale_down,
        last_rollout=last_rollout,
        last_cap_change=last_cap_change,
        rollout_in_progress=rollout_in_progress,
    )


def with_last_minutes(base: MetricsWindow, minutes: float, **changes: float) -> MetricsWindow:
    """`base` with the samples of its last `minutes` changed (running, waiting, kv, preemptions)."""
    since = base.end - minutes * 60
    samples = tuple(
        replace(sample, **changes) if sample.time > since else sample  # type: ignore[arg-type]
        for sample in base.samples
    )
    return replace(base, samples=samples)


def test_signals_total_demand_over_pods_and_router_queue() -> None:
    base = window(pods=3, running=10, waiting=2)
    with_router = replace(base, router_waiting=((base.end, 12.0),))

    signals = read_signals(with_router, POLICY, NOW)

    assert signals.demand_now == 3 * 12 + 12
    assert signals.waiting_now == 3 * 2 + 12
    assert signals.running_per_replica == 10
    assert signals.reporting_pods == ("pod-0", "pod-1", "pod-2")


def test_signals_count_a_pod_silent_once_its_newest_sample_is_stale() -> None:
    fresh = window(pods=2)
    old = window(pods=1, newest_age_s=POLICY.stale_after_s + 1)
    renamed = tuple(replace(sample, pod="gone") for sample in old.samples)
    combined = replace(fresh, samples=fresh.samples + renamed)

    signals = read_signals(combined, POLICY, NOW)

    assert signals.reporting_pods == ("pod-0", "pod-1")
    assert signals.silent_pods == ("gone",)


def test_signals_set_latency_against_the_load_of_the_same_minute() -> None:
    # The load doubles in the last 15 s: the percentile beside it still describes the minute before.
    base = window(pods=2, running=20)
    jumped = with_last_minutes(base, 0.2, running=40)

    last = read_signals(jumped, POLICY, NOW).load_points[-1]

    assert 20 < last.running_per_replica < 40
    assert last.itl_slow_share == 0.02


def test_signals_leave_the_first_minute_of_a_window_out_of_the_evidence() -> None:
    signals = read_signals(window(span_s=120), POLICY, NOW)

    assert signals.load_points
    assert min(point.time for point in signals.load_points) >= NOW - 120 + 60 - STEP
