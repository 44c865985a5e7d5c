"""What a fast-forward replay returns: per-request latencies, per-twin time series, token ITLs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of `values`, linear between closest ranks; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class LatencyHistogram:
    """Weighted latencies in log-spaced bins 1% wide: percentiles of millions of tokens, cheaply."""

    _FLOOR_S = 1e-6
    _RATIO = 1.01

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self.total = 0
        self.sum_s = 0.0
        self._log_ratio = math.log(self._RATIO)

    def add(self, seconds: float, weight: int = 1) -> None:
        """Record `weight` observations of `seconds`."""
        index = int(math.log(max(seconds, self._FLOOR_S) / self._FLOOR_S) / self._log_ratio)
        self._counts[index] = self._counts.get(index, 0) + weight
        self.total += weight
        self.sum_s += seconds * weight

    @property
    def mean(self) -> float:
        return self.sum_s / self.total if self.total else math.nan

    def percentile(self, q: float) -> float:
        """The q-th percentile (0..100), to within the 1% bin width; NaN when empty."""
        if not self.total:
            return math.nan
        target = self.total * q / 100
        seen = 0
        for index in sorted(self._counts):
            seen += self._counts[index]
            if seen >= target:
                return self._FLOOR_S * math.pow(self._RATIO, index + 0.5)
        return self._FLOOR_S * math.pow(self._RATIO, max(self._counts) + 0.5)


@dataclass(frozen=True, slots=True)
class RequestResult:
    """One replayed request's fate."""

    request_id: str
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    twin_id: int | None
    """The twin that served it; None if it was rejected before dispatch."""
    ttft_s: float | None
    """Arrival to first token; None if rejected."""
    itl_s: float | None
    """Mean gap between its output tokens; None with fewer than two tokens or if rejected."""
    e2e_s: float | None
    """Arrival to last token; None if rejected."""
    queue_s: float | None
    """Arrival to first scheduled step."""
    cached_tokens: int = 0
    """Prompt tokens found in the prefix cache at first admission."""
    num_preemptions: int = 0
    rejected: str | None = None
    """Why the twin refused it (too long for max_model_len), else None."""


@dataclass(slots=True)
class TwinSeries:
    """One twin's state sampled at a fixed interval, and its lifetime (for GPU-hours)."""

    twin_id: int
    gpus: int
    """GPUs the twin occupies (its tensor-parallel size)."""
    started_s: float
    """When the twin was added (its GPUs are paid from here, through the load time)."""
    ready_s: float
    """When its model finished loading."""
    stopped_s: float | None = None
    """When it was retired and drained; None if it ran to the end of the replay."""
    times: list[float] = field(default_factory=list)
    running: list[int] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)
    kv_usage: list[float] = field(default_factory=list)
    preemptions: list[int] = field(default_factory=list)
    """Cumulative preemptions (vLLM's `num_preemptions_total`)."""

    def gpu_seconds(self, end_s: float) -> float:
        """GPU-seconds held from start to stop (or to `end_s` if still running)."""
        stop = self.stopped_s if self.stopped_s is not None else end_s
        return max(0.0, stop - self.started_s) * self.gpus


@dataclass(slots=True)
class ReplayResult:
    """Everything a replay measured."""

    requests: list[RequestResult]
    """In submission order."""
    twins: list[TwinSeries]
    itl_tokens: LatencyHistogram
    """Every inter-token gap of every request (vLLM's `inter_token_latency_seconds`)."""
    end_s: float
    """Simulated time when the last request finished."""

    def served(self) -> list[RequestResult]:
        return [result for result in self.requests if result.rejected is None]

    def ttft_percentile(self, q: float) -> float:
        return percentile([r.ttft_s for r in self.requests if r.ttft_s is not None], q)

    def e2e_percentile(self, q: float) -> float:
        return percentile([r.e2e_s for r in self.requests if r.e2e_s is not None], q)

    def gpu_hours(self) -> float:
        return sum(series.gpu_seconds(self.end_s) for series in self.twins) / 3600
