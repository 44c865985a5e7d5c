"""llm-d's saturation autoscaler (the Workload Variant Autoscaler's saturation analyzer).

Algorithm, from llm-d/llm-d-workload-variant-autoscaler: docs/saturation-analyzer.md and
docs/saturation-scaling-config.md:

- per replica, the peak KV-cache usage and the peak queue length over the last minute;
- a replica is saturated when KV >= kvCacheThreshold (0.80) or queue >= queueLengthThreshold (5);
- over the non-saturated replicas, average spare KV (threshold - usage) and spare queue;
- scale up by one when average spare KV < kvSpareTrigger (0.1) or average spare queue <
  queueSpareTrigger (3) (or when every replica is saturated), and not while replicas are still
  starting (they are counted, to avoid cascading scale-ups);
- scale down by one only if, with the non-saturated replicas' total load spread over one replica
  fewer, spare KV and spare queue would still meet the triggers (and at least two are
  non-saturated);
- the reconcile runs every 60 s.

Tuning moves the two saturation thresholds together by one factor, with the spare triggers kept
in their published proportion to them (0.1 / 0.8 and 3 / 5).
"""

from __future__ import annotations

from bench.autoscale.cluster import SimCluster
from bench.autoscale.policies.base import Bounds, Command

PEAK_WINDOW_S = 60.0


class LlmdSaturation:
    period_s = 60.0

    def __init__(self, bounds: Bounds, *, kv_threshold: float = 0.8, queue_threshold: float = 5.0) -> None:
        self.name = "llm-d-saturation"
        self.bounds = bounds
        self.kv_threshold = kv_threshold
        self.queue_threshold = queue_threshold
        self.kv_trigger = kv_threshold * 0.1 / 0.8
        self.queue_trigger = queue_threshold * 3.0 / 5.0

    def step(self, cluster: SimCluster, now: float) -> Command:
        current = cluster.target
        peaks: dict[int, tuple[float, float]] = {}
        for scrape in cluster.scrapes_since(now - PEAK_WINDOW_S):
            for gauges in scrape.replicas:
                kv, queue = peaks.get(gauges.twin_id, (0.0, 0.0))
                peaks[gauges.twin_id] = (max(kv, gauges.kv_usage), max(queue, float(gauges.waiting)))
        ready_ids = {twin.twin_id for twin in cluster.ready(now)}
        loads = [peak for twin_id, peak in peaks.items() if twin_id in ready_ids]
        if not loads:
            return Command(current)
        calm = [(kv, q) for kv, q in loads if kv < self.kv_threshold and q < self.queue_threshold]
        pending = cluster.pending(now)
        if not calm:
            scale_up = True
        else:
            spare_kv = sum(self.kv_threshold - kv for kv, _ in calm) / len(calm)
            spare_queue = sum(self.queue_threshold - q for _, q in calm) / len(calm)
            scale_up = spare_kv < self.kv_trigger or spare_queue < self.queue_trigger
        if scale_up:
            if pending:
                return Command(current)
            target = self.bounds.clamp(current + 1)
            return Command(
                target, note="saturation: spare capacity below trigger" if target != current else ""
            )
        if len(calm) >= 2 and not pending:
            remaining = len(calm) - 1
            kv_after = sum(kv for kv, _ in calm) / remaining
            queue_after = sum(q for _, q in calm) / remaining
            safe = (
                self.kv_threshold - kv_after >= self.kv_trigger
                and self.queue_threshold - queue_after >= self.queue_trigger
            )
            if safe:
                target = self.bounds.clamp(current - 1)
                return Command(
                    target,
                    note="saturation: one replica fewer stays unsaturated" if target != current else "",
                )
        return Command(current)
