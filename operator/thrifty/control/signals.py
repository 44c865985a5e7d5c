"""The figures the policy reasons with, computed once from a window.

Samples are grouped by scrape time (rounded to the sample interval), so totals over replicas are
taken at one moment, as a PromQL `sum` at one evaluation time would.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from thrifty.control.policy import ScalingPolicy
from thrifty.control.window import MetricsWindow, ReplicaSample


@dataclass(frozen=True, slots=True)
class LoadPoint:
    """The reporting replicas at one scrape: how loaded they were and how fast they answered."""

    time: float
    running_per_replica: float
    """Mean over the minute before the scrape, like the latency percentile beside it."""
    kv_peak: float
    """Highest KV-cache usage of any replica over that minute."""
    itl_ratio: float | None
    """ITL p95 over the minute before, / SLO; None without an ITL SLO or without tokens."""
    itl_slow_share: float | None = None
    """Share of that minute's inter-token gaps longer than the ITL SLO; None when unknown."""


@dataclass(frozen=True, slots=True)
class TrafficPoint:
    """The model's request traffic at one scrape, over the minute before."""

    time: float
    arrivals_per_s: float
    """Requests that arrived per second: those finished, plus the growth of those in flight
    (in the engines and at the router)."""
    replicas: int
    """Replicas reporting at that scrape."""
    mean_itl_s: float | None
    """Mean inter-token gap of that minute, model-wide; None when unknown."""
    arrivals_last_step_per_s: float | None = None
    """The same figure with the growth of those in flight over the last scrape interval only:
    a step in the traffic shows at the first scrape after it, where the minute's figure takes the
    minute to catch up (noisier: the in-flight count varies from scrape to scrape). None when
    the scrape before is missing."""
    held: float = 0.0
    """Requests the router held back at that scrape (every replica at its cap): a backlog. The
    engines' own waiting queue is left out: with long prompts it holds requests waiting for their
    prefill chunk in normal operation."""


@dataclass(frozen=True, slots=True)
class Signals:
    """One window, reduced to what the decision needs. Latency ratios are p95 / SLO."""

    reporting_pods: tuple[str, ...]
    """Pods whose newest sample is fresh."""
    silent_pods: tuple[str, ...]
    """Pods with samples in the window, none of them fresh."""
    newest_s: float | None
    """Time of the newest sample of any pod; None for an empty window."""
    coverage_s: float
    """Time between the oldest and the newest scrape: how much history the window holds."""
    demand_now: float
    """Running + waiting over the reporting pods at the newest scrape, plus the router's queue."""
    demand_recent: float
    """Mean of that total over the recent part of the window."""
    demand_high: float
    """90th percentile of that total over the last `window_s` (what a scale-down must still carry)."""
    demand_slope_per_s: float
    """Least-squares trend of the total over the last `window_s`, requests per second."""
    waiting_now: float
    """Queued requests at the newest scrape: in the engines plus at the router."""
    waiting_slope_per_s: float
    waiting_sustained: float
    """The fewest queued requests at any of the last `sustained_scrapes` scrapes: a queue that
    lasted, not the moment's arrivals waiting for the next engine step."""
    running_per_replica: float
    """Mean running requests per reporting replica over the recent part of the window."""
    kv_peak: float
    """Highest KV-cache usage of any replica in the recent part of the window."""
    preemptions_recent: float
    """Preemptions of all replicas in the recent part of the window."""
    preemptions_window: float
    """Preemptions of all replicas over the last `window_s`."""
    ttft_ratio: float | None
    """TTFT p95 / SLO at the newest latency sample; None without an SLO or without traffic."""
    itl_ratio: float | None
    ttft_p95_s: float | None
    itl_p95_s: float | None
    latency_missing: bool
    """Traffic was in flight but no latency percentile came with it."""
    finished_per_s: float | None
    """Requests finished per second by the reporting pods (newest sample); None if unknown."""
    load_points: tuple[LoadPoint, ...] = ()
    """Every scrape of the whole window (`evidence_s`), oldest first: the policy's evidence of
    what one replica can carry within the SLOs."""
    traffic: tuple[TrafficPoint, ...] = ()
    """Every scrape whose finished-request rates are known, oldest first."""


def _bucket(time: float, interval: float) -> int:
    return round(time / interval)


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over x; 0 with fewer than three points."""
    if len(points) < 3:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def sure_slope(points: Sequence[tuple[float, float]], z: float = 2.0) -> float:
    """The least-squares slope less `z` standard errors (about the 95% lower bound for z = 2),
    and never below 0: the rise the points show beyond their own noise. 0 with fewer than four
    points (two degrees of freedom for the error at least)."""
    n = len(points)
    if n < 4:
        return 0.0
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return 0.0
    fitted = slope(points)
    residual = sum((y - mean_y - fitted * (x - mean_x)) ** 2 for x, y in points)
    error = math.sqrt(residual / (n - 2) / spread)
    return max(0.0, fitted - z * error)


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of `values`, linear between closest ranks; 0 when empty."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = (len(ordered) - 1) * q
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class _Scrape:
    """Totals over the reporting pods at one scrape bucket."""

    demand: float = 0.0
    waiting: float = 0.0
    running: float = 0.0
    pods: int = 0
    kv_peak: float = 0.0
    finished: float = 0.0
    finished_pods: int = 0
    itl_worst: float | None = None
    ttft_worst: float | None = None


def _scrapes(samples: Sequence[ReplicaSample], pods: frozenset[str], interval: float) -> dict[int, _Scrape]:
    scrapes: defaultdict[int, _Scrape] = defaultdict(_Scrape)
    for sample in samples:
        if sample.pod not in pods:
            continue
        entry = scrapes[_bucket(sample.time, interval)]
        entry.demand += sample.demand
        entry.waiting += sample.waiting
        entry.running += sample.running
        entry.pods += 1
        entry.kv_peak = max(entry.kv_peak, sample.kv_cache_usage)
        if sample.finished_per_s is not None:
            entry.finished += sample.finished_per_s
            entry.finished_pods += 1
        if sample.itl_p95_s is not None:
            entry.itl_worst = max(entry.itl_worst or 0.0, sample.itl_p95_s)
        if sample.ttft_p95_s is not None:
            entry.ttft_worst = max(entry.ttft_worst or 0.0, sample.ttft_p95_s)
    return scrapes


def _latency_by_bucket(
    window: MetricsWindow, scrapes: dict[int, _Scrape], interval: float
) -> dict[int, tuple[float | None, float | None, float | None]]:
    """(TTFT p95, ITL p95, slow ITL share) per scrape bucket: model-wide when the window has it,
    else the worst replica's own percentiles (and no share)."""
    if window.latency:
        return {
            _bucket(s.time, interval): (s.ttft_p95_s, s.itl_p95_s, s.itl_slow_share) for s in window.latency
        }
    return {key: (entry.ttft_worst, entry.itl_worst, None) for key, entry in scrapes.items()}


def _ratio(value: float | None, slo: float | None) -> float | None:
    return value / slo if value is not None and slo else None


def read_signals(window: MetricsWindow, policy: ScalingPolicy, now: float) -> Signals:
    """Reduce `window` to `Signals`, as of `now`."""
    interval = policy.sample_interval_s
    latest = window.latest_by_pod()
    fresh_after = now - policy.stale_after_s
    reporting = tuple(sorted(pod for pod, sample in latest.items() if sample.time >= fresh_after))
    silent = tuple(sorted(pod for pod, sample in latest.items() if sample.time < fresh_after))
    newest = max((sample.time for sample in window.samples), default=None)
    oldest = min((sample.time for sample in window.samples), default=None)
    coverage = (newest - oldest) if newest is not None and oldest is not None else 0.0
    recent_start = now - policy.recent_s

    # Totals per scrape count every pod present then, including pods that have gone since.
    scrapes = _scrapes(window.samples, frozenset(window.pods()), interval)
    router = {_bucket(time, interval): value for time, value in window.router_waiting}
    latency = _latency_by_bucket(window, scrapes, interval)
    keys = sorted(scrapes)
    times = {key: key * interval for key in keys}
    demand = {key: scrapes[key].demand + router.get(key, 0.0) for key in keys}
    waiting = {key: scrapes[key].waiting + router.get(key, 0.0) for key in keys}
    recent = [key for key in keys if times[key] > recent_start]
    scaling = [key for key in keys if times[key] > now - policy.window_s]
    last = keys[-1] if keys else None

    def per_replica_running(selected: Sequence[int]) -> float:
        values = [scrapes[key].running / scrapes[key].pods for key in selected if scrapes[key].pods]
        return sum(values) / len(values) if values else 0.0

    newest_latency = [key for key in sorted(latency) if times.get(key, key * interval) > recent_start]
    ttft, itl, _share = latency[newest_latency[-1]] if newest_latency else (None, None, None)
    ttft_slo, itl_slo = policy.ttft_p95_slo_s, policy.itl_p95_slo_s
    latency_wanted = ttft_slo is not None or itl_slo is not None
    in_flight = demand[last] if last is not None else 0.0
    latency_missing = latency_wanted and in_flight > 0 and ttft is None and itl is None

    # A pod too new for a one-minute rate counts as finishing at the others' average.
    rates = [rate for pod in reporting if (rate := latest[pod].finished_per_s) is not None]
    finished = sum(rates) * len(reporting) / len(rates) if rates else None

    recent_samples = [s for s in window.samples if s.pod in reporting and s.time > recent_start]
    window_samples = [s for s in window.samples if s.pod in reporting and s.time > now - policy.window_s]
    # A latency percentile covers the minute before its scrape, so it is set against the mean load
    # of that same minute, not the load of the instant (which a scale-out changes at once).
    # The first minute of a window has no full minute of latency behind it: no evidence there.
    span = max(1, round(policy.recent_s / interval))
    points: list[LoadPoint] = []
    for key in keys[span:]:
        minute = [k for k in range(key - span + 1, key + 1) if k in scrapes and scrapes[k].pods]
        if not minute:
            continue
        points.append(
            LoadPoint(
                time=times[key],
                running_per_replica=sum(scrapes[k].running / scrapes[k].pods for k in minute) / len(minute),
                kv_peak=max(scrapes[k].kv_peak for k in minute),
                itl_ratio=_ratio(latency.get(key, (None, None, None))[1], itl_slo),
                itl_slow_share=latency.get(key, (None, None, None))[2],
            )
        )
    mean_itl = {_bucket(sample.time, interval): sample.mean_itl_s for sample in window.latency}
    traffic = []
    for key in keys:
        entry = scrapes[key]
        if not entry.finished_pods:
            continue
        finished_total = entry.finished * entry.pods / entry.finished_pods
        earlier = demand.get(key - span)
        growth = (demand[key] - earlier) / (span * interval) if earlier is not None else 0.0
        previous = demand.get(key - 1)
        last_step = (
            max(0.0, finished_total + (demand[key] - previous) / interval) if previous is not None else None
        )
        traffic.append(
            TrafficPoint(
                times[key],
                max(0.0, finished_total + growth),
                entry.pods,
                mean_itl.get(key),
                last_step,
                router.get(key, 0.0),
            )
        )
    return Signals(
        reporting_pods=reporting,
        silent_pods=silent,
        newest_s=newest,
        coverage_s=coverage,
        demand_now=in_flight,
        demand_recent=sum(demand[key] for key in recent) / len(recent) if recent else in_flight,
        demand_high=quantile([demand[key] for key in scaling], 0.9),
        demand_slope_per_s=slope([(times[key], demand[key]) for key in scaling]),
        waiting_now=waiting[last] if last is not None else 0.0,
        waiting_slope_per_s=slope([(times[key], waiting[key]) for key in scaling]),
        waiting_sustained=min((waiting[key] for key in keys[-policy.sustained_scrapes :]), default=0.0),
        running_per_replica=per_replica_running(recent),
        kv_peak=max((s.kv_cache_usage for s in recent_samples), default=0.0),
        preemptions_recent=sum(s.preemptions for s in recent_samples),
        preemptions_window=sum(s.preemptions for s in window_samples),
        ttft_ratio=_ratio(ttft, ttft_slo),
        itl_ratio=_ratio(itl, itl_slo),
        ttft_p95_s=ttft,
        itl_p95_s=itl,
        latency_missing=latency_missing,
        finished_per_s=finished,
        load_points=tuple(points),
        traffic=tuple(traffic),
    )
