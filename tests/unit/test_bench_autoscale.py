"""The autoscaling benchmark's parts: rate scaling, histograms, each baseline's published rules,
one short replay end to end, the roofline and the choice of the best baseline."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# bench/ is not an installed package; the benchmark runs as `python -m bench.autoscale` from the root.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.autoscale.cluster import Scrape, SimCluster, TwinGauges
from bench.autoscale.histograms import BucketedHistogram
from bench.autoscale.policies.aibrix_kpa import AibrixKpa
from bench.autoscale.policies.base import Bounds
from bench.autoscale.policies.clairvoyant import Clairvoyant, raise_missed
from bench.autoscale.policies.hpa import HorizontalPodAutoscaler
from bench.autoscale.policies.kubeai import KubeAI
from bench.autoscale.policies.llmd_saturation import LlmdSaturation
from bench.autoscale.policies.static import StaticPeak
from bench.autoscale.policies.thrifty import ThriftyPolicy
from bench.autoscale.report import best_baseline
from bench.autoscale.roofline import roofline_gpu_hours
from bench.autoscale.runner import RunResult, Slo, run_policy
from bench.autoscale.traffic import multiply_rate, peak_rate

from thrifty.control import ScalingPolicy
from thrifty.twin import TraceRequest, engine_config_from_vllm_args

BOUNDS = Bounds(1, 16)


def _trace(count: int, gap_s: float, prompt: int = 300, output: int = 40) -> list[TraceRequest]:
    return [TraceRequest(i * gap_s, prompt, output, request_id=f"r{i}") for i in range(count)]


# ---- traffic ----


def test_multiply_rate_keeps_the_hour_its_order_and_the_request_sizes() -> None:
    trace = [TraceRequest(i * 2.0, 100 + i, 10 + i, request_id=f"r{i}") for i in range(500)]

    scaled = multiply_rate(trace, 3.5, seed=1)

    assert 3.3 * len(trace) < len(scaled) < 3.7 * len(trace)
    assert [r.arrival_s for r in scaled] == sorted(r.arrival_s for r in scaled)
    assert scaled[-1].arrival_s < trace[-1].arrival_s + 2.0
    assert {(r.prompt_tokens, r.output_tokens) for r in scaled} == {
        (r.prompt_tokens, r.output_tokens) for r in trace
    }
    assert len({r.request_id for r in scaled}) == len(scaled)


def test_multiply_rate_keeps_each_minute_and_spreads_the_copies_of_a_request_over_it() -> None:
    trace = [TraceRequest(i * 2.0, 100 + i, 10 + i, request_id=f"r{i}") for i in range(300)]

    scaled = multiply_rate(trace, 4.0, seed=3)

    per_minute = [sum(1 for r in scaled if m * 60 <= r.arrival_s < (m + 1) * 60) for m in range(10)]
    assert per_minute == [120] * 10, "each minute holds four times its own requests"
    spans = []
    for index in range(len(trace)):
        times = [r.arrival_s for r in scaled if r.request_id.startswith(f"r{index}-")]
        assert len(times) == 4
        assert all(math.floor(t / 60) == math.floor(trace[index].arrival_s / 60) for t in times)
        spans.append(max(times) - min(times))
    # Copies placed within the 2 s gap to the next request would span under 2 s.
    assert sorted(spans)[len(spans) // 2] > 15.0


def test_peak_rate_is_the_busiest_five_minutes() -> None:
    quiet = _trace(600, 1.0)
    busy = [TraceRequest(600 + i * 0.25, 100, 10, request_id=f"b{i}") for i in range(1200)]

    assert peak_rate(quiet + busy) == pytest.approx(4.0)


def test_histogram_percentiles_and_shares_follow_the_observations() -> None:
    histogram = BucketedHistogram(5.0)
    for index in range(100):
        histogram.add(12.0, 0.010 if index < 90 else 0.100)

    assert histogram.percentile(10.0, 15.0, 50) == pytest.approx(0.010, rel=0.01)
    assert histogram.percentile(10.0, 15.0, 95) == pytest.approx(0.100, rel=0.01)
    assert histogram.share_above(10.0, 15.0, 0.05) == pytest.approx(0.10)
    assert histogram.percentile(0.0, 10.0, 95) is None


# ---- baselines, on a fake cluster ----


@dataclass
class FakeTwin:
    twin_id: int


@dataclass
class FakeCluster:
    target: int
    scrapes: list[Scrape] = field(default_factory=list)
    pending_count: int = 0

    def scrapes_since(self, start: float) -> list[Scrape]:
        return [scrape for scrape in self.scrapes if scrape.time > start]

    def ready(self, now: float) -> list[FakeTwin]:
        return [FakeTwin(g.twin_id) for g in self.scrapes[-1].replicas] if self.scrapes else []

    def pending(self, now: float) -> int:
        return self.pending_count

    def observe(self, time: float, *, running: int = 10, waiting: int = 0, kv: float = 0.2) -> None:
        gauges = tuple(TwinGauges(i, running, waiting, kv, 0, 0, 256) for i in range(self.target))
        self.scrapes.append(Scrape(time, gauges))


def _step(policy: Any, cluster: FakeCluster, now: float) -> int:
    replicas: int = policy.step(cluster, now).replicas
    return replicas


def test_hpa_follows_the_ratio_to_target_and_tolerates_ten_percent() -> None:
    hpa = HorizontalPodAutoscaler(BOUNDS, target_waiting=5)
    cluster = FakeCluster(target=4)

    cluster.observe(0, waiting=10)
    assert _step(hpa, cluster, 0) == 8
    cluster.observe(15, waiting=5)  # 5.4 would be within the tolerance too
    assert _step(hpa, cluster, 15) == 4


def test_hpa_scale_down_takes_the_highest_recommendation_of_five_minutes() -> None:
    hpa = HorizontalPodAutoscaler(BOUNDS, target_waiting=5)
    cluster = FakeCluster(target=8)
    cluster.observe(0, waiting=5)
    _step(hpa, cluster, 0)

    cluster.observe(60, waiting=0)
    assert _step(hpa, cluster, 60) == 8
    cluster.observe(301, waiting=0)
    assert _step(hpa, cluster, 301) == 1


def test_kubeai_scales_up_at_once_and_down_after_consecutive_recommendations() -> None:
    kubeai = KubeAI(BOUNDS, target_requests=10, scale_down_delay_s=30)
    cluster = FakeCluster(target=4)
    cluster.observe(0, running=10)
    assert _step(kubeai, cluster, 0) == 4

    cluster.scrapes.clear()
    cluster.observe(10, running=0)
    downs = [_step(kubeai, cluster, 10 * k) for k in range(2, 6)]

    # The 10-minute average barely moves; once it rounds down, three consecutive calls pass first.
    assert downs[0] == 4
    assert all(replicas >= 3 for replicas in downs)


def test_kpa_in_panic_mode_never_scales_down() -> None:
    kpa = AibrixKpa(BOUNDS, target_kv=0.1)
    cluster = FakeCluster(target=2)
    cluster.observe(0, kv=0.5)
    up = _step(kpa, cluster, 10)
    assert up == 4  # panic: two pods at 0.5 want ten, at most twice the ready pods

    cluster.target = up
    cluster.observe(20, kv=0.01)
    assert _step(kpa, cluster, 20) >= up


def test_llmd_scales_up_one_at_a_time_and_not_while_replicas_start() -> None:
    saturation = LlmdSaturation(BOUNDS)
    cluster = FakeCluster(target=3)
    cluster.observe(30, kv=0.75)  # spare KV 0.05 < 0.1

    assert _step(saturation, cluster, 60) == 4
    cluster.pending_count = 1
    assert _step(saturation, cluster, 120) == 3


def test_llmd_scales_down_only_if_one_replica_fewer_stays_unsaturated() -> None:
    saturation = LlmdSaturation(BOUNDS)
    light = FakeCluster(target=4)
    light.observe(30, kv=0.2, waiting=0)
    heavy = FakeCluster(target=4)
    heavy.observe(30, kv=0.6, waiting=1)

    assert _step(saturation, light, 60) == 3
    assert _step(saturation, heavy, 60) == 4


# ---- one replay end to end ----

CONFIG = engine_config_from_vllm_args(
    {"model": "meta-llama/Llama-3.1-8B-Instruct", "max_model_len": 4096, "enable_prefix_caching": False},
    gpu_product="NVIDIA-H100-80GB-HBM3",
)


def test_a_short_replay_measures_gpu_hours_windows_and_attainment() -> None:
    result = run_policy(
        _trace(240, 0.5),
        CONFIG,
        StaticPeak(2),
        variant="default",
        setting="replicas=2",
        initial_replicas=2,
        startup_s=120,
        slo=Slo(),
    )

    assert result.completed
    assert result.windows == 2
    assert result.slo_attainment == 1.0
    assert result.request_attainment == 1.0
    assert result.gpu_hours == pytest.approx(2 * 120 / 3600, rel=0.05)
    assert result.series
    assert result.series[-1].replicas == 2


def test_a_replay_names_the_minutes_that_missed_the_slo() -> None:
    # A light first minute, then a second minute far beyond one replica, then a light third.
    light = [TraceRequest(i * 2.0, 300, 40, request_id=f"a{i}") for i in range(30)]
    burst = [TraceRequest(60.0 + i * 0.02, 2000, 200, request_id=f"b{i}") for i in range(3000)]
    tail = [TraceRequest(170.0 + i * 2.0, 300, 40, request_id=f"c{i}") for i in range(5)]
    result = run_policy(
        [*light, *burst, *tail],
        CONFIG,
        StaticPeak(1),
        variant="default",
        setting="replicas=1",
        initial_replicas=1,
        startup_s=120,
        slo=Slo(),
    )

    assert 0 not in result.failed_minutes
    assert 1 in result.failed_minutes
    assert len(result.failed_minutes) == result.failed_windows


def test_the_bound_raises_each_missed_minute_by_one_within_the_ceiling() -> None:
    assert raise_missed([2, 3, 5, 1], [1, 2, 2, 9], max_replicas=5) == [2, 4, 5, 1]
    assert raise_missed([2, 3], [], max_replicas=5) == [2, 3]


def test_the_bound_asks_for_each_minute_ahead_of_its_start_up() -> None:
    schedule = Clairvoyant([2, 2, 6, 3, 1], startup_s=90.0)

    assert schedule.wanted(0.0) == 2
    assert schedule.wanted(30.0) == 6, "minute 2 starts within 90 s (and a control period)"
    assert schedule.wanted(150.0) == 6
    assert schedule.wanted(180.0) == 3
    assert schedule.wanted(240.0) == 1


def _burst_on_one_replica(*, router_queue: bool) -> SimCluster:
    """400 requests in one second on one ready replica capped at 8, and a second replica asked
    for at once (ready after its load time), replayed to the end."""
    cluster = SimCluster(CONFIG, startup_s=30.0, ttft_slo_s=2.0, itl_slo_s=0.05, router_queue=router_queue)
    cluster.start(1)
    cluster.set_cap(8)
    cluster.scale_to(2, 0.0)
    for request in _trace(400, 0.0025, prompt=300, output=200):
        cluster.submit(request)
        held = max((cluster._load(twin) for twin in cluster.ready(request.arrival_s)), default=0)
        if router_queue:
            assert held <= 8, "the router sent a replica more than its cap"
    cluster.advance_to(1.0)
    if router_queue:
        assert cluster.scrape(1.0).router_queue > 350, "the excess waits in the router, and it says so"
    else:
        assert cluster.scrape(1.0).router_queue == 0
    cluster.finish()
    assert cluster.tally.finished == 400
    return cluster


def test_behind_the_router_a_backlog_drains_to_a_replica_that_starts_later() -> None:
    engine_queue = _burst_on_one_replica(router_queue=False)
    router = _burst_on_one_replica(router_queue=True)

    # Sent straight to the engine, the whole burst stays on the first replica; held by the router,
    # the second replica takes its share once it is ready, and the burst's tail waits less.
    assert engine_queue.finished == [400, 0]
    assert router.finished[1] > 80
    assert router.ttft.overall_percentile(95) < 0.8 * (engine_queue.ttft.overall_percentile(95) or 0.0)


def test_thrifty_reads_a_prometheus_like_window_from_the_replay() -> None:
    thrifty = ThriftyPolicy(ScalingPolicy(ttft_p95_slo_s=2.0, itl_p95_slo_s=0.05, tune_max_num_seqs=True))

    result = run_policy(
        _trace(480, 0.25),
        CONFIG,
        thrifty,
        variant="default",
        setting="",
        initial_replicas=1,
        startup_s=120,
        slo=Slo(),
    )

    assert result.completed
    assert thrifty.actions  # it decided something in two minutes of traffic
    assert all(decision.metrics_available for _, decision in thrifty.decisions)


def test_roofline_grows_with_the_load() -> None:
    light = roofline_gpu_hours(_trace(600, 1.0), CONFIG, itl_slo_s=0.05)
    heavy = roofline_gpu_hours(multiply_rate(_trace(600, 1.0), 3.0), CONFIG, itl_slo_s=0.05)

    assert 0 < light < heavy
    assert heavy == pytest.approx(3 * light, rel=0.25)


def _run(
    policy: str, variant: str, gpu_hours: float, attainment: float, *, completed: bool = True
) -> RunResult:
    return RunResult(
        policy, variant, "", gpu_hours, attainment, attainment, 59, 0, 0, 8192, 0, completed, None, 0, 0, 0
    )


def test_best_baseline_is_the_cheapest_reaching_the_goal_else_the_most_attaining() -> None:
    runs = [
        _run("thrifty", "default", 5.0, 1.0),
        _run("kubeai", "default", 4.0, 0.6),
        _run("kubeai", "tuned", 9.0, 1.0),
        _run("static-peak", "tuned", 8.0, 0.995),
        _run("hpa-waiting", "grid", 1.0, 1.0, completed=False),
    ]

    assert best_baseline(runs).policy == "static-peak"
    assert (
        best_baseline([r for r in runs if r.slo_attainment < 0.99 or r.policy == "thrifty"]).policy
        == "kubeai"
    )


@pytest.mark.parametrize("true_scale", [0.7, 1.3])
def test_thrifty_learns_the_step_time_of_twins_off_their_calibration(true_scale: float) -> None:
    """The twins run 30% slower (or faster) than the calibration Thrifty's model starts from: after
    a few minutes of traffic the planner's correction has found the true step time."""
    thrifty = ThriftyPolicy(
        ScalingPolicy(ttft_p95_slo_s=2.0, itl_p95_slo_s=0.05, tune_max_num_seqs=True, engine=CONFIG)
    )
    requests = [
        TraceRequest(i * 0.1, 200 + 37 * (i % 17), 60 + 11 * (i % 13), request_id=f"r{i}")
        for i in range(6600)
    ]

    result = run_policy(
        requests,
        CONFIG,
        thrifty,
        variant="default",
        setting="",
        initial_replicas=2,
        startup_s=120,
        slo=Slo(),
        step_time_scale=true_scale,
    )

    plans = [decision.plan for _, decision in thrifty.decisions if decision.plan is not None]
    assert result.completed
    assert plans, "the planner ran (the bench feeds Thrifty the server configuration and the mix)"
    assert plans[-1].step_time_scale == pytest.approx(true_scale, rel=0.12)
    assert "step time x" in plans[-1].reason


def test_a_batch_of_gaps_bins_as_the_gaps_one_by_one() -> None:
    gaps = [0.012, 0.012, 0.012, 0.0305, 1e-6, 0.012, 2.5]
    one_by_one, batched = BucketedHistogram(60.0), BucketedHistogram(60.0)
    for gap in gaps:
        one_by_one.add(75.0, gap)
    batched.add_all(75.0, gaps)
    assert batched.buckets == one_by_one.buckets
    assert batched.count(60.0, 120.0) == len(gaps)


def test_the_static_grid_skips_what_is_cheaper_than_a_default_that_misses(monkeypatch: Any) -> None:
    """Static replicas below a count that misses the goal miss it too: the grid does not run them
    (the simulations are replaced by a record of what was asked; 10 replicas is the first to pass)."""
    from bench.autoscale import experiments

    tried: list[int] = []

    def fake_run(autoscaler: Any, variant: str, setting: str, *, stop_when_infeasible: bool) -> RunResult:
        replicas = autoscaler.replicas
        tried.append(replicas)
        passes = replicas >= 10
        return RunResult(
            "static-peak",
            variant,
            setting,
            float(replicas),
            1.0 if passes else 0.5,
            1.0,
            60,
            0,
            0,
            8192,
            0,
            passes,
            None if passes else 600.0,
            0.1,
            0.01,
            0.0,
        )

    context = experiments.BenchContext(
        requests=[],
        config=None,
        bounds=Bounds(1, 16),
        slo=Slo(2.0, 0.05),
        startup_s=120.0,  # type: ignore[arg-type]
        initial_replicas=8,
        replicas_at_peak=8,
        thrifty=None,  # type: ignore[arg-type]
    )
    monkeypatch.setattr(experiments, "_CONTEXT", context)
    monkeypatch.setattr(experiments, "_run", fake_run)

    results = experiments.run_baseline("static-peak")

    assert tried == [8, 9, 10]
    assert results[-1].variant == "tuned"
    assert results[-1].setting == "replicas=10"
