"""What the policy sees of a model: a window of per-replica samples, as Prometheus stores them.

`thrifty.metrics` builds a `MetricsWindow` from PromQL range queries; the autoscaling benchmark
builds the same type from simulated twins. The policy never learns which one it got.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from thrifty.capacity import RequestMix


@dataclass(frozen=True, slots=True)
class ReplicaSample:
    """One replica (pod) at one scrape time."""

    pod: str
    """The pod's name (Prometheus target label `pod`)."""
    time: float
    """When Prometheus scraped it, in seconds since the epoch (or since the start of a replay)."""
    running: float
    """Requests in the engine's running batch (`vllm:num_requests_running`)."""
    waiting: float
    """Requests queued inside the engine (`vllm:num_requests_waiting`)."""
    kv_cache_usage: float
    """Share of KV-cache blocks in use, 0..1 (`vllm:kv_cache_usage_perc`)."""
    preemptions: float = 0.0
    """Preemptions since the previous sample (increase of `vllm:num_preemptions_total`)."""
    ttft_p95_s: float | None = None
    """This replica's time-to-first-token p95 over the last minute; None when it served nothing."""
    itl_p95_s: float | None = None
    """This replica's inter-token-latency p95 over the last minute; None when it emitted nothing."""
    finished_per_s: float | None = None
    """Requests it finished per second over the last minute (`vllm:request_success_total`);
    None when the metric is not available."""

    @property
    def demand(self) -> float:
        """Requests the replica holds: running plus waiting."""
        return self.running + self.waiting


@dataclass(frozen=True, slots=True)
class LatencySample:
    """Model-wide latency percentiles at one time, aggregated over every replica's histogram."""

    time: float
    ttft_p95_s: float | None
    """Time-to-first-token p95 over the last minute; None when no request got its first token."""
    itl_p95_s: float | None
    """Inter-token-latency p95 over the last minute; None when no token was emitted."""
    itl_slow_share: float | None = None
    """Share of the last minute's inter-token gaps longer than the ITL SLO (from the histogram's
    buckets, interpolated at the SLO); None when unknown. The p95 meets the SLO while this stays
    at or below 5%."""
    mean_itl_s: float | None = None
    """Mean inter-token gap over the last minute (the ITL histogram's sum over its count): one
    engine step, which the capacity model predicts; None when unknown."""


@dataclass(frozen=True, slots=True)
class MetricsWindow:
    """Every sample of one model between `start` and `end`, oldest first.

    Samples of a pod that went away stay in the window until they age out; the policy counts a
    pod as reporting only while its newest sample is fresh.
    """

    start: float
    end: float
    samples: tuple[ReplicaSample, ...] = ()
    latency: tuple[LatencySample, ...] = ()
    """Model-wide percentiles (histogram_quantile over the sum of every replica's buckets). When
    empty, the policy falls back on the worst replica's own percentiles."""
    router_waiting: tuple[tuple[float, float], ...] = ()
    """(time, requests) that Thrifty's router holds back for this model because every replica
    is at its effective cap; empty when the model has no router (or it exports nothing)."""
    generated_tokens_per_s: tuple[tuple[float, float], ...] = ()
    """(time, tokens per second) the whole model generated over the minute before
    (`vllm:generation_tokens_total`): what its cost per token is reckoned on; empty when unknown."""
    mix: RequestMix | None = None
    """The prompt and output lengths and the prefix-cache hit rate of the requests the model
    finished lately (vLLM's token histograms and prefix-cache counters); None when unknown."""
    errors: tuple[str, ...] = field(default=())
    """Queries that failed while the window was built, in words; the policy holds on any."""

    def pods(self) -> tuple[str, ...]:
        """Pods with at least one sample, in name order."""
        return tuple(sorted({sample.pod for sample in self.samples}))

    def latest_by_pod(self) -> dict[str, ReplicaSample]:
        """The newest sample of every pod."""
        latest: dict[str, ReplicaSample] = {}
        for sample in self.samples:
            held = latest.get(sample.pod)
            if held is None or sample.time >= held.time:
                latest[sample.pod] = sample
        return latest

    def between(self, start: float, end: float) -> Iterable[ReplicaSample]:
        """Samples taken at `start` < time <= `end`."""
        return (sample for sample in self.samples if start < sample.time <= end)
