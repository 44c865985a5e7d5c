"""Thrifty's own policy (`thrifty.control.decide`), fed the way the live loop feeds it.

The window is what Prometheus would return for the last five minutes at a 15-second step: each
ready replica's gauges, its preemptions since the previous step, its finished requests per second
over the last minute, the model-wide TTFT and ITL p95 over the last minute, and the requests the
router holds back. The state carries
the times of past actions, as the live loop reads them back from status.decisions. The policy runs
with its defaults and the model's spec.scaling: nothing is tuned to the trace.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from bench.autoscale.cluster import Scrape, SimCluster
from bench.autoscale.policies.base import Command

from thrifty.capacity import RequestMix
from thrifty.control import (
    Action,
    Decision,
    LatencySample,
    MetricsWindow,
    ReplicaSample,
    ScalingPolicy,
    ScalingState,
    decide,
)

STEP_S = 15.0
RATE_WINDOW_S = 60.0
MIX_WINDOW_S = 300.0
"""The token histograms and prefix-cache counters are read over this much of the past, as the
live loop's queries read them (metrics/queries.py)."""
MIN_MIX_REQUESTS = 20


class ThriftyPolicy:
    def __init__(self, policy: ScalingPolicy) -> None:
        self.name = "thrifty"
        self.policy = policy
        self.period_s = policy.sample_interval_s
        self.last_scale_up: float | None = None
        self.last_scale_down: float | None = None
        self.last_rollout: float | None = None
        self.last_cap_change: float | None = None
        self.actions: Counter[str] = Counter()
        self.decisions: list[tuple[float, Decision]] = []

    def window(self, cluster: SimCluster, now: float) -> MetricsWindow:
        policy = self.policy
        start = now - max(policy.window_s, policy.evidence_s)
        step = policy.sample_interval_s
        scrapes = [s for s in cluster.scrapes if s.time > start - RATE_WINDOW_S - step]
        on_step = [s for s in scrapes if _on_grid(s.time, step)]
        by_time = {s.time: s for s in scrapes}
        samples: list[ReplicaSample] = []
        latency: list[LatencySample] = []
        for scrape in on_step:
            if scrape.time <= start:
                continue
            before = by_time.get(scrape.time - step)
            rate_base = by_time.get(scrape.time - RATE_WINDOW_S)
            for gauges in scrape.replicas:
                samples.append(
                    ReplicaSample(
                        pod=f"twin-{gauges.twin_id}",
                        time=scrape.time,
                        running=gauges.running,
                        waiting=gauges.waiting,
                        kv_cache_usage=gauges.kv_usage,
                        preemptions=_increase(before, gauges.twin_id, gauges.preemptions_total),
                        finished_per_s=_rate(rate_base, gauges.twin_id, gauges.finished_total),
                    )
                )
            since = scrape.time - RATE_WINDOW_S
            ttft = cluster.ttft.percentile(since, scrape.time, 95)
            itl = cluster.itl.percentile(since, scrape.time, 95)
            slow = (
                cluster.itl.share_above(since, scrape.time, policy.itl_p95_slo_s)
                if policy.itl_p95_slo_s is not None
                else None
            )
            mean_itl = cluster.itl.mean(since, scrape.time)
            latency.append(LatencySample(scrape.time, ttft, itl, slow, mean_itl))
        return MetricsWindow(
            start=start,
            end=now,
            samples=tuple(samples),
            latency=tuple(latency),
            router_waiting=tuple((s.time, float(s.router_queue)) for s in on_step if s.time > start),
            mix=_mix(cluster, now, on_step),
        )

    def state(self, cluster: SimCluster, now: float) -> ScalingState:
        return ScalingState(
            replicas=cluster.target,
            ready_replicas=len(cluster.ready(now)),
            engine_max_num_seqs=cluster.engine_flag,
            effective_cap=cluster.cap,
            last_scale_up=self.last_scale_up,
            last_scale_down=self.last_scale_down,
            last_rollout=self.last_rollout,
            last_cap_change=self.last_cap_change,
            rollout_in_progress=cluster.rollout_in_progress,
            engine_max_num_batched_tokens=cluster.engine_tokens,
        )

    def step(self, cluster: SimCluster, now: float) -> Command:
        decision = decide(self.window(cluster, now), self.state(cluster, now), self.policy, now)
        for change in decision.changes:
            self.actions[change.action.value] += 1
            if change.action is Action.SCALE_UP:
                self.last_scale_up = now
            elif change.action is Action.SCALE_DOWN:
                self.last_scale_down = now
            elif change.action in (Action.ROLL_MAX_NUM_SEQS, Action.ROLL_TOKEN_BUDGET):
                self.last_rollout = now
            else:
                self.last_cap_change = now
        if decision.action is Action.HOLD:
            self.actions[Action.HOLD.value] += 1
        if decision.changes:
            self.decisions.append((now, decision))
        return Command(
            decision.replicas,
            cap=decision.effective_cap,
            engine_flag=decision.engine_max_num_seqs,
            engine_tokens=decision.engine_max_num_batched_tokens,
            note=decision.reason if decision.changes else "",
        )


def _mix(cluster: SimCluster, now: float, scrapes: Sequence[Scrape]) -> RequestMix | None:
    """The lengths of the requests finished over `MIX_WINDOW_S`, and the prefix-cache hit rate
    over the same span (from the replicas' counters, as vLLM exports them)."""
    sizes = cluster.sizes_since(now - MIX_WINDOW_S)
    if len(sizes) < MIN_MIX_REQUESTS:
        return None
    hits = queries = 0
    first = next((s for s in scrapes if s.time > now - MIX_WINDOW_S), None)
    if first is not None and scrapes:
        before = {g.twin_id: g for g in first.replicas}
        for gauges in scrapes[-1].replicas:
            base = before.get(gauges.twin_id)
            hits += gauges.prefix_hits_total - (base.prefix_hits_total if base else 0)
            queries += gauges.prefix_queries_total - (base.prefix_queries_total if base else 0)
    hit_rate = min(0.99, hits / queries) if queries > 0 else 0.0
    return RequestMix.from_requests(
        [prompt for _, prompt, _ in sizes], [output for _, _, output in sizes], prefix_hit_rate=hit_rate
    )


def _on_grid(time: float, step: float) -> bool:
    return abs(time / step - round(time / step)) < 1e-6


def _increase(before: Scrape | None, twin_id: int, total: int) -> float:
    if before is None:
        return 0.0
    for gauges in before.replicas:
        if gauges.twin_id == twin_id:
            return float(max(0, total - gauges.preemptions_total))
    return 0.0


def _rate(base: Scrape | None, twin_id: int, total: int) -> float | None:
    if base is None:
        return None
    for gauges in base.replicas:
        if gauges.twin_id == twin_id:
            return max(0, total - gauges.finished_total) / RATE_WINDOW_S
    return None
