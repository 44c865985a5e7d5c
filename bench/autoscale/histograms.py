"""Latency observations in time buckets, so that any window's p95 is a merge away.

Each bucket holds log-spaced bins 1% wide (as Prometheus-style histograms, only much finer), so a
percentile is exact to within 1% and a one-hour replay of millions of tokens stays small.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable

_FLOOR_S = 1e-5
_LOG_RATIO = math.log(1.01)
_LOG_FLOOR = math.log(_FLOOR_S)
_PER_LOG = 1 / _LOG_RATIO


def bin_of(seconds: float) -> int:
    return int((math.log(seconds) - _LOG_FLOOR) * _PER_LOG) if seconds > _FLOOR_S else 0


def bin_value(index: int) -> float:
    return _FLOOR_S * math.exp((index + 0.5) * _LOG_RATIO)


class BucketedHistogram:
    """Observations keyed by time bucket (`bucket_s` wide) and latency bin."""

    def __init__(self, bucket_s: float) -> None:
        self.bucket_s = bucket_s
        self.buckets: defaultdict[int, defaultdict[int, int]] = defaultdict(lambda: defaultdict(int))

    def add(self, time_s: float, seconds: float, weight: int = 1) -> None:
        index = int((math.log(seconds) - _LOG_FLOOR) * _PER_LOG) if seconds > _FLOOR_S else 0
        self.buckets[int(time_s // self.bucket_s)][index] += weight

    def add_all(self, time_s: float, values: Iterable[float]) -> None:
        """One observation of each value (repeats binned once: in a step every decoding request
        sees the same gap)."""
        bucket = self.buckets[int(time_s // self.bucket_s)]
        for seconds, count in Counter(values).items():
            bucket[int((math.log(seconds) - _LOG_FLOOR) * _PER_LOG) if seconds > _FLOOR_S else 0] += count

    def add_bin(self, time_s: float, index: int, weight: int) -> None:
        self.buckets[int(time_s // self.bucket_s)][index] += weight

    def merged(self, start_s: float, end_s: float) -> dict[int, int]:
        """Bin counts of every bucket that starts at or after `start_s` and ends by `end_s`."""
        first = math.ceil(start_s / self.bucket_s - 1e-9)
        last = math.floor(end_s / self.bucket_s + 1e-9)
        merged: defaultdict[int, int] = defaultdict(int)
        for key in range(first, last):
            bucket = self.buckets.get(key)
            if bucket:
                for index, count in bucket.items():
                    merged[index] += count
        return merged

    def percentile(self, start_s: float, end_s: float, q: float) -> float | None:
        """The q-th percentile (0..100) of observations in [start_s, end_s); None if there are none."""
        return percentile_of(self.merged(start_s, end_s), q)

    def share_above(self, start_s: float, end_s: float, seconds: float) -> float | None:
        """Share of observations in [start_s, end_s) longer than `seconds`; None if there are none."""
        merged = self.merged(start_s, end_s)
        total = sum(merged.values())
        if total == 0:
            return None
        limit = bin_of(seconds)
        return sum(count for index, count in merged.items() if index > limit) / total

    def mean(self, start_s: float, end_s: float) -> float | None:
        """Mean of the observations in [start_s, end_s) (to within the 1% bins); None if none."""
        merged = self.merged(start_s, end_s)
        total = sum(merged.values())
        if total == 0:
            return None
        return sum(bin_value(index) * count for index, count in merged.items()) / total

    def overall_percentile(self, q: float) -> float | None:
        """The q-th percentile of every observation."""
        merged: defaultdict[int, int] = defaultdict(int)
        for bucket in self.buckets.values():
            for index, count in bucket.items():
                merged[index] += count
        return percentile_of(merged, q)

    def count(self, start_s: float, end_s: float) -> int:
        return sum(self.merged(start_s, end_s).values())


def percentile_of(counts: dict[int, int], q: float) -> float | None:
    total = sum(counts.values())
    if total == 0:
        return None
    target = total * q / 100
    seen = 0
    for index in sorted(counts):
        seen += counts[index]
        if seen >= target:
            return bin_value(index)
    return bin_value(max(counts))
