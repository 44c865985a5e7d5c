"""The request mix a replica serves: prompt and output lengths, and how much of each prompt is cached.

A mix is a few equally likely values per distribution (its quantile points), so that a capacity
computation is a sum over a few dozen points instead of an integral. It comes from token counts
of requests (a trace, a benchmark) or from vLLM's own histograms in Prometheus
(`vllm:request_prompt_tokens`, `vllm:request_generation_tokens`), interpolated within buckets.

    mix = RequestMix.from_requests(prompts, outputs, prefix_hit_rate=0.3)
    mix = RequestMix.from_histograms(prompt_buckets, output_buckets, prefix_hit_rate=0.3)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_POINTS = 32
"""Quantile points per distribution: enough that the 95th-percentile prompt has two points above it."""


class MixError(ValueError):
    """A request mix that cannot describe real requests (names the field at fault)."""


def _quantile_points(values: Sequence[float], points: int) -> tuple[float, ...]:
    ordered = sorted(values)
    last = len(ordered) - 1
    out = []
    for index in range(points):
        rank = (index + 0.5) / points * last
        low = math.floor(rank)
        high = min(low + 1, last)
        out.append(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))
    return tuple(out)


def _points_from_buckets(
    buckets: Sequence[tuple[float, float]], points: int, where: str
) -> tuple[float, ...]:
    """Quantile points of a cumulative histogram [(upper bound, count at or below)], +Inf last.

    Linear within a bucket, as PromQL's histogram_quantile; the +Inf bucket's share sits at the
    highest finite bound (nothing is known above it).
    """
    ordered = sorted(buckets, key=lambda bucket: bucket[0])
    if not ordered or ordered[-1][1] <= 0:
        raise MixError(f"{where}: the histogram has no observations")
    total = ordered[-1][1]
    finite = [bucket for bucket in ordered if math.isfinite(bucket[0])]
    if not finite:
        raise MixError(f"{where}: the histogram has no finite bucket bound")
    out = []
    for index in range(points):
        wanted = (index + 0.5) / points * total
        lower_bound, lower_count = 0.0, 0.0
        value = finite[-1][0]
        for bound, count in finite:
            if count >= wanted:
                share = (wanted - lower_count) / (count - lower_count) if count > lower_count else 1.0
                value = lower_bound + (bound - lower_bound) * share
                break
            lower_bound, lower_count = bound, count
        out.append(max(1.0, value))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class RequestMix:
    """Prompt and output lengths (equally likely values, in tokens) and the prefix-cache hit rate."""

    prompt_tokens: tuple[float, ...]
    """Prompt lengths, cached part included."""
    output_tokens: tuple[float, ...]
    """Generated tokens per request."""
    prefix_hit_rate: float = 0.0
    """Share of prompt tokens found in the prefix cache (`vllm:prefix_cache_hits` over
    `vllm:prefix_cache_queries`): that part is read as context but never computed."""

    def __post_init__(self) -> None:
        for name, values in (("prompt_tokens", self.prompt_tokens), ("output_tokens", self.output_tokens)):
            if not values:
                raise MixError(f"{name}: needs at least one value")
            bad = [value for value in values if not math.isfinite(value) or value < 1]
            if bad:
                raise MixError(f"{name}: every length must be a finite number >= 1 token, got {bad[0]!r}")
        if not (math.isfinite(self.prefix_hit_rate) and 0.0 <= self.prefix_hit_rate < 1.0):
            raise MixError(f"prefix_hit_rate: must be in [0, 1), got {self.prefix_hit_rate!r}")

    @classmethod
    def from_requests(
        cls,
        prompt_tokens: Sequence[float],
        output_tokens: Sequence[float],
        *,
        prefix_hit_rate: float = 0.0,
        points: int = DEFAULT_POINTS,
    ) -> RequestMix:
        """The mix of recorded requests (any number of each; they need not pair up)."""
        if not prompt_tokens or not output_tokens:
            raise MixError("from_requests: needs at least one prompt length and one output length")
        return cls(
            _quantile_points(prompt_tokens, points),
            _quantile_points(output_tokens, points),
            prefix_hit_rate,
        )

    @classmethod
    def from_histograms(
        cls,
        prompt_buckets: Sequence[tuple[float, float]],
        output_buckets: Sequence[tuple[float, float]],
        *,
        prefix_hit_rate: float = 0.0,
        points: int = DEFAULT_POINTS,
    ) -> RequestMix:
        """The mix from two cumulative histograms, [(bucket upper bound `le`, count)] each."""
        return cls(
            _points_from_buckets(prompt_buckets, points, "prompt tokens histogram"),
            _points_from_buckets(output_buckets, points, "generation tokens histogram"),
            prefix_hit_rate,
        )

    @property
    def mean_prompt(self) -> float:
        return sum(self.prompt_tokens) / len(self.prompt_tokens)

    @property
    def mean_output(self) -> float:
        return sum(self.output_tokens) / len(self.output_tokens)

    @property
    def decode_context(self) -> float:
        """Mean context of a request while it decodes: its prompt plus half its output, weighted by
        output length (a long answer decodes for longer, so it is in more steps)."""
        outputs = self.output_tokens
        weighted_half = sum(o * o for o in outputs) / (2 * sum(outputs))
        return self.mean_prompt + weighted_half

    def describe(self) -> str:
        """For reasons: `prompts 1155 tokens (p95 4083), outputs 211, 0% cached`."""
        ordered = sorted(self.prompt_tokens)
        p95 = ordered[min(len(ordered) - 1, math.floor(0.95 * len(ordered)))]
        return (
            f"prompts {self.mean_prompt:.0f} tokens (p95 {p95:.0f}), outputs {self.mean_output:.0f}, "
            f"{self.prefix_hit_rate:.0%} cached"
        )
