"""The load: a recorded trace, its rate multiplied so that its busiest minutes need a given number
of replicas, with the shape of the hour kept.

The rule, the same for every trace:

1. Capacity of one replica: the highest Poisson arrival rate, with request sizes drawn from the
   trace, at which one replica (the benchmark's engine configuration) meets both SLOs over a
   five-minute replay (TTFT p95 and ITL p95 over the whole replay, after a one-minute warm-up).
2. Peak rate: the trace's highest arrival rate over any five-minute window (one-minute steps).
3. Factor = replicas at peak x capacity / peak rate. Each request is kept `floor(factor)` times,
   plus once more with probability `frac(factor)`; a copy arrives at a uniformly random time
   within its original's minute (seeded; whole minutes of the trace, the last one ending at the
   last arrival), with the original's sizes. Each minute holds about `factor` times its requests,
   so the hour keeps its shape at every time scale from a minute up; copies of one request do not
   arrive together (placed between the original and the next arrival, the 17 copies of one
   32k-token prompt landed within a quarter second: bursts of identical prompts no real traffic
   has, which no replica count could serve within the TTFT SLO).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.autoscale.cluster import SimCluster

from thrifty.twin import EngineConfig, TraceRequest, load_azure_trace, load_mooncake_trace

PEAK_WINDOW_S = 300.0


def load_trace(path: Path) -> list[TraceRequest]:
    """Azure CSV (`TIMESTAMP,ContextTokens,GeneratedTokens`) or Mooncake JSON lines, by suffix."""
    if path.suffix == ".jsonl":
        requests = load_mooncake_trace(path)
    elif path.suffix == ".csv":
        requests = load_azure_trace(path)
    else:
        raise ValueError(
            f"TRACE={path}: expected an Azure-format .csv (TIMESTAMP,ContextTokens,GeneratedTokens) "
            "or Mooncake .jsonl"
        )
    if not requests:
        raise ValueError(f"TRACE={path}: no requests in the file")
    return sorted(requests, key=lambda request: request.arrival_s)


def peak_rate(requests: Sequence[TraceRequest], window_s: float = PEAK_WINDOW_S) -> float:
    """Highest arrivals per second over any `window_s` window starting on a whole minute."""
    if not requests:
        return 0.0
    end = requests[-1].arrival_s
    per_minute: dict[int, int] = {}
    for request in requests:
        minute = int(request.arrival_s // 60)
        per_minute[minute] = per_minute.get(minute, 0) + 1
    span = max(1, int(window_s // 60))
    last_start = max(0, int(end // 60) - span + 1)
    best = max(
        sum(per_minute.get(m, 0) for m in range(start, start + span)) for start in range(last_start + 1)
    )
    return best / min(window_s, max(end, 60.0))


def multiply_rate(requests: Sequence[TraceRequest], factor: float, *, seed: int = 7) -> list[TraceRequest]:
    """The trace with about `factor` times as many requests over the same hour (see module doc)."""
    rng = random.Random(seed)
    whole = math.floor(factor)
    fraction = factor - whole
    last = requests[-1].arrival_s if requests else 0.0
    out: list[TraceRequest] = []
    for index, request in enumerate(requests):
        minute = math.floor(request.arrival_s / 60.0) * 60.0
        span = max(0.0, min(60.0, last - minute))
        copies = whole + (1 if rng.random() < fraction else 0)
        for copy in range(copies):
            arrival = request.arrival_s if copy == 0 else minute + rng.random() * span
            out.append(
                TraceRequest(
                    arrival_s=arrival,
                    prompt_tokens=request.prompt_tokens,
                    output_tokens=request.output_tokens,
                    block_hashes=request.block_hashes,
                    request_id=f"{request.request_id or index}-{copy}",
                )
            )
    out.sort(key=lambda item: item.arrival_s)
    return out


@dataclass(frozen=True)
class Calibration:
    capacity_per_replica: float
    """Requests per second one replica serves within both SLOs."""
    peak_rate: float
    """Arrivals per second in the trace's busiest five minutes, before scaling."""
    factor: float
    """The rate multiplier."""


def _poisson(sizes: Sequence[TraceRequest], rate: float, duration_s: float, seed: int) -> list[TraceRequest]:
    rng = random.Random(seed)
    out: list[TraceRequest] = []
    clock = 0.0
    while True:
        clock += rng.expovariate(rate)
        if clock >= duration_s:
            return out
        sample = sizes[rng.randrange(len(sizes))]
        out.append(TraceRequest(clock, sample.prompt_tokens, sample.output_tokens, request_id=str(len(out))))


def meets_slo_alone(
    config: EngineConfig,
    sizes: Sequence[TraceRequest],
    rate: float,
    *,
    ttft_s: float,
    itl_s: float,
    step_time_scale: float = 1.0,
) -> bool:
    """Whether one replica serves Poisson arrivals at `rate` within both SLOs (5 minutes)."""
    duration, warmup = 300.0, 60.0
    cluster = SimCluster(
        config, startup_s=0.0, ttft_slo_s=ttft_s, itl_slo_s=itl_s, step_time_scale=step_time_scale
    )
    cluster.start(1)
    for request in _poisson(sizes, rate, duration, seed=11):
        cluster.submit(request)
    end = cluster.finish()
    ttft = cluster.ttft.percentile(warmup, end + 1.0, 95)
    itl = cluster.itl.percentile(warmup, end + 1.0, 95)
    return ttft is not None and itl is not None and ttft <= ttft_s and itl <= itl_s


def calibrate(
    requests: Sequence[TraceRequest],
    config: EngineConfig,
    *,
    replicas_at_peak: int,
    ttft_s: float,
    itl_s: float,
    step_time_scale: float = 1.0,
) -> Calibration:
    """Capacity of one replica by bisection on the rate, and the factor that makes the peak need
    `replicas_at_peak` replicas."""
    sizes = [r for r in requests if r.prompt_tokens + r.output_tokens <= config.max_model_len]
    low, high = 0.0, 1.0

    def meets(rate: float) -> bool:
        return meets_slo_alone(
            config, sizes, rate, ttft_s=ttft_s, itl_s=itl_s, step_time_scale=step_time_scale
        )

    while meets(high):
        low, high = high, high * 2
        if high > 4096:
            break
    for _ in range(7):
        middle = (low + high) / 2
        if meets(middle):
            low = middle
        else:
            high = middle
    capacity = low
    peak = peak_rate(requests)
    return Calibration(capacity, peak, replicas_at_peak * capacity / peak if peak > 0 else 1.0)
