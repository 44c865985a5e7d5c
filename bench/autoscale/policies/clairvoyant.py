"""The clairvoyant bound: a schedule that knows every minute's arrivals in advance.

For each minute of the trace, the fewest replicas that serve that minute's requests within both
p95 SLOs, found by simulation: the minute's requests (with the half minute before them as a
warm-up, so the replicas do not start empty) replayed on N loaded replicas behind Thrifty's
router (the data path the bound is set against), N searched from the capacity model's guess. The schedule then asks, at every moment, for
the most replicas any minute of the coming start-up horizon needs, so each replica is ready when
its minute begins, and lets one go as soon as no minute ahead needs it.

A minute sized alone can still miss in the whole replay (requests older than the warm-up still
decoding, the router's placement): the bound is replayed, each minute that missed gets one more
replica, and again, until the schedule meets the attainment goal every tuned policy must meet.

No autoscaler can do better than knowing the future, up to the search's granularity (whole
replicas, whole minutes); it bounds how much a planner could still save, beside the roofline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from bench.autoscale.cluster import SimCluster
from bench.autoscale.policies.base import Command
from bench.autoscale.runner import Slo

from thrifty.capacity import LatencySlo, ReplicaModel, RequestMix
from thrifty.twin import EngineConfig, TraceRequest

MINUTE_S = 60.0
WARMUP_S = 30.0


def _meets(
    config: EngineConfig,
    requests: Sequence[TraceRequest],
    replicas: int,
    start: float,
    slo: Slo,
    step_time_scale: float,
) -> bool:
    cluster = SimCluster(
        config,
        startup_s=0.0,
        ttft_slo_s=slo.ttft_p95_s,
        itl_slo_s=slo.itl_p95_s,
        step_time_scale=step_time_scale,
        router_queue=True,
    )
    cluster.start(replicas)
    for request in requests:
        cluster.submit(request)
    cluster.finish()
    ttft = cluster.ttft.percentile(start, start + MINUTE_S, 95)
    itl = cluster.itl.percentile(start, start + MINUTE_S, 95)
    return (ttft is None or ttft <= slo.ttft_p95_s) and (itl is None or itl <= slo.itl_p95_s)


def fewest_replicas_per_minute(
    requests: Sequence[TraceRequest],
    config: EngineConfig,
    slo: Slo,
    *,
    max_replicas: int,
    step_time_scale: float = 1.0,
) -> list[int]:
    """For minute m of the trace, the fewest replicas meeting the SLO in it (at most `max_replicas`),
    on twins `step_time_scale` times as slow as the calibration (the bound knows the true speed)."""
    model = ReplicaModel(config, step_time_scale=step_time_scale)

    def meets(replay: Sequence[TraceRequest], count: int, start: float) -> bool:
        return _meets(config, replay, count, start, slo, step_time_scale)

    minutes = math.ceil(requests[-1].arrival_s / MINUTE_S)
    needed: list[int] = []
    for minute in range(minutes):
        start = minute * MINUTE_S
        own = [r for r in requests if start <= r.arrival_s < start + MINUTE_S]
        if not own:
            needed.append(0)
            continue
        replay = [r for r in requests if start - WARMUP_S <= r.arrival_s < start + MINUTE_S]
        mix = RequestMix.from_requests([r.prompt_tokens for r in own], [r.output_tokens for r in own])
        capacity = model.capacity(mix, LatencySlo(slo.ttft_p95_s, slo.itl_p95_s)).rate_per_s
        guess = max(1, min(max_replicas, math.ceil(len(own) / MINUTE_S / max(capacity, 1e-6))))
        if meets(replay, guess, start):
            count = guess
            while count > 1 and meets(replay, count - 1, start):
                count -= 1
        else:
            count = guess + 1
            while count < max_replicas and not meets(replay, count, start):
                count += 1
        needed.append(count)
    return needed


def raise_missed(per_minute: Sequence[int], missed: Sequence[int], *, max_replicas: int) -> list[int]:
    """The schedule with one more replica in each minute that missed the SLO in a replay."""
    raised = list(per_minute)
    for minute in set(missed):
        if 0 <= minute < len(raised):
            raised[minute] = min(max_replicas, raised[minute] + 1)
    return raised


class Clairvoyant:
    """Replays a per-minute schedule of replica counts, start-up delay honoured."""

    name = "clairvoyant"
    period_s = 5.0

    def __init__(self, per_minute: Sequence[int], *, startup_s: float, min_replicas: int = 1) -> None:
        self.per_minute = list(per_minute)
        self.startup_s = startup_s
        self.min_replicas = min_replicas

    def wanted(self, now: float) -> int:
        first = int(now // MINUTE_S)
        last = int((now + self.startup_s + self.period_s) // MINUTE_S)
        ahead = self.per_minute[first : last + 1]
        return max([self.min_replicas, *ahead])

    def step(self, cluster: SimCluster, now: float) -> Command:
        wanted = self.wanted(now)
        return Command(wanted, note=f"minutes ahead need {wanted}" if wanted != cluster.target else "")
