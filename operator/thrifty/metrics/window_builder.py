"""Prometheus query results -> the policy's `MetricsWindow`. Pure: tested without Prometheus.

Results come in the HTTP API's shapes: a range query gives `[{"metric": {...}, "values": [[t,
"v"], ...]}]`, an instant query `[{"metric": {...}, "value": [t, "v"]}]`.

Staleness: a range query fills each step with the newest sample of the last five minutes, so a pod
that stopped being scraped keeps "reporting" its last value. The instant query of each pod's newest
scrape time tells the two apart: steps later than that scrape (plus one interval) are dropped, so
such a pod's newest sample is as old as its newest scrape, and the policy sees it go silent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from thrifty.capacity import MixError, RequestMix
from thrifty.control import LatencySample, MetricsWindow, ReplicaSample

RangeResult = Sequence[Mapping[str, Any]]
InstantResult = Sequence[Mapping[str, Any]]


def number(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def by_pod(result: RangeResult) -> dict[str, dict[float, float]]:
    """pod -> time -> value, without NaN or infinite points."""
    out: dict[str, dict[float, float]] = {}
    for series in result:
        pod = str(series.get("metric", {}).get("pod", ""))
        points = out.setdefault(pod, {})
        for stamp, text in series.get("values", ()):
            value = number(text)
            if value is not None:
                points[float(stamp)] = value
    return out


def model_wide(result: RangeResult) -> dict[float, float]:
    """time -> value of a query with one series (the first is taken)."""
    for series in result:
        return {float(t): v for t, text in series.get("values", ()) if (v := number(text)) is not None}
    return {}


def instant_by_pod(result: InstantResult) -> dict[str, float]:
    out: dict[str, float] = {}
    for series in result:
        value = number(series.get("value", (None, None))[1])
        if value is not None:
            out[str(series.get("metric", {}).get("pod", ""))] = value
    return out


def share_above(buckets: Mapping[float, float], threshold: float) -> float | None:
    """Share of observations above `threshold` from cumulative bucket counts (`le` -> count),
    interpolating linearly inside the bucket that holds it, as histogram_quantile does."""
    if not buckets:
        return None
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if math.isinf(bounds[-1]) else max(buckets.values())
    if total <= 0:
        return None
    below = 0.0
    lower, lower_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if threshold < bound:
            if math.isinf(bound):
                below = lower_count
            else:
                below = lower_count + (count - lower_count) * (threshold - lower) / (bound - lower)
            break
        lower, lower_count = bound, count
    else:
        below = lower_count
    return max(0.0, min(1.0, 1.0 - below / total))


def slow_shares(result: RangeResult, threshold: float) -> dict[float, float]:
    """time -> share of ITL observations above `threshold`, from a `sum by (le)` range result."""
    per_time: dict[float, dict[float, float]] = {}
    for series in result:
        bound = number(series.get("metric", {}).get("le", "nan"))
        le_text = str(series.get("metric", {}).get("le", ""))
        if le_text == "+Inf":
            bound = math.inf
        if bound is None:
            continue
        for stamp, text in series.get("values", ()):
            value = number(text)
            if value is not None:
                per_time.setdefault(float(stamp), {})[bound] = value
    shares = {}
    for stamp, buckets in per_time.items():
        share = share_above(buckets, threshold)
        if share is not None:
            shares[stamp] = share
    return shares


@dataclass(frozen=True, slots=True)
class WindowResults:
    """The raw answers of every query behind one window."""

    running: RangeResult
    waiting: RangeResult
    kv_cache_usage: RangeResult
    preemptions: RangeResult
    finished_per_s: RangeResult
    ttft_p95: RangeResult
    itl_p95: RangeResult
    itl_buckets: RangeResult
    last_scrape: InstantResult
    generated_tokens_per_s: RangeResult = ()
    router_waiting: RangeResult = ()
    mean_itl: RangeResult = ()
    prompt_buckets: InstantResult = ()
    output_buckets: InstantResult = ()
    prefix_hit_rate: InstantResult = ()


MIN_MIX_REQUESTS = 20
"""Fewer finished requests than this say too little about the mix to plan with."""


def instant_buckets(result: InstantResult) -> list[tuple[float, float]]:
    """[(le, count)] of an instant `sum by (le)` answer, +Inf as infinity."""
    buckets = []
    for series in result:
        text = str(series.get("metric", {}).get("le", ""))
        bound = math.inf if text == "+Inf" else number(text)
        count = number(series.get("value", (None, None))[1])
        if bound is not None and count is not None:
            buckets.append((bound, count))
    return buckets


def request_mix(results: WindowResults) -> RequestMix | None:
    """The mix of the requests finished lately, or None when too few finished or the histograms
    say nothing usable (the policy then plans from its window alone)."""
    prompts = instant_buckets(results.prompt_buckets)
    outputs = instant_buckets(results.output_buckets)
    if not prompts or not outputs or max(count for _, count in prompts) < MIN_MIX_REQUESTS:
        return None
    hit = next((number(s.get("value", (None, None))[1]) for s in results.prefix_hit_rate), None)
    try:
        return RequestMix.from_histograms(prompts, outputs, prefix_hit_rate=min(0.99, max(0.0, hit or 0.0)))
    except MixError:
        return None


def build_window(
    results: WindowResults,
    *,
    start: float,
    end: float,
    scrape_interval_s: float,
    itl_slo_s: float | None,
    errors: Sequence[str] = (),
) -> MetricsWindow:
    """The window the policy reads, from the query answers (see the module doc on staleness)."""
    running = by_pod(results.running)
    waiting = by_pod(results.waiting)
    kv = by_pod(results.kv_cache_usage)
    preemptions = by_pod(results.preemptions)
    finished = by_pod(results.finished_per_s)
    last_scrape = instant_by_pod(results.last_scrape)
    samples: list[ReplicaSample] = []
    for pod in sorted(running):
        newest_real = last_scrape.get(pod)
        for stamp in sorted(running[pod]):
            if newest_real is not None and stamp > newest_real + scrape_interval_s:
                continue  # a step Prometheus filled from an old sample: the pod has gone silent
            samples.append(
                ReplicaSample(
                    pod=pod,
                    time=stamp,
                    running=running[pod][stamp],
                    waiting=waiting.get(pod, {}).get(stamp, 0.0),
                    kv_cache_usage=kv.get(pod, {}).get(stamp, 0.0),
                    preemptions=preemptions.get(pod, {}).get(stamp, 0.0),
                    finished_per_s=finished.get(pod, {}).get(stamp),
                )
            )
    ttft = model_wide(results.ttft_p95)
    itl = model_wide(results.itl_p95)
    mean_itl = model_wide(results.mean_itl)
    shares = slow_shares(results.itl_buckets, itl_slo_s) if itl_slo_s is not None else {}
    latency = tuple(
        LatencySample(stamp, ttft.get(stamp), itl.get(stamp), shares.get(stamp), mean_itl.get(stamp))
        for stamp in sorted(set(ttft) | set(itl) | set(shares))
    )
    tokens = model_wide(results.generated_tokens_per_s)
    return MetricsWindow(
        start=start,
        end=end,
        samples=tuple(samples),
        latency=latency,
        router_waiting=tuple(sorted(model_wide(results.router_waiting).items())),
        generated_tokens_per_s=tuple(sorted(tokens.items())),
        mix=request_mix(results),
        errors=tuple(errors),
    )
