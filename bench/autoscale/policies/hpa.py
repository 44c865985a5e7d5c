"""Kubernetes HorizontalPodAutoscaler (autoscaling/v2) on the Pods metric `vllm:num_requests_waiting`.

Algorithm, from the Kubernetes documentation "Horizontal Pod Autoscaling" (section "Algorithm
details") and kube-controller-manager defaults (pkg/controller/podautoscaler):

- every 15 s (--horizontal-pod-autoscaler-sync-period), desired = ceil(ready pods x average
  metric / target), skipped while |average / target - 1| <= 0.1 (the default tolerance);
- pods without metrics yet (still starting) count as using 0 when the result is a scale-up, and
  the scale-up is dropped if that reverses it (the "missing metrics" rule);
- default behaviour: scale-up without stabilization, at most max(+100%, +4 pods) per 15 s;
  scale-down to the highest recommendation of the last 300 s (stabilizationWindowSeconds), at
  most -100% per 15 s.

Default target: an average of 5 waiting requests per pod, the threshold of the vLLM production
stack's KEDA autoscaling guide (docs/source/use_cases/autoscaling-keda.rst in
vllm-project/production-stack); Kubernetes itself publishes no default for this metric.
"""

from __future__ import annotations

import math
from collections import deque

from bench.autoscale.cluster import SimCluster
from bench.autoscale.policies.base import Bounds, Command

TOLERANCE = 0.1
DOWN_STABILIZATION_S = 300.0


class HorizontalPodAutoscaler:
    period_s = 15.0

    def __init__(self, bounds: Bounds, *, target_waiting: float = 5.0) -> None:
        self.name = "hpa-waiting"
        self.bounds = bounds
        self.target = target_waiting
        self._recommendations: deque[tuple[float, int]] = deque()

    def _recommend(self, cluster: SimCluster, now: float) -> int:
        current = cluster.target
        scrape = cluster.scrapes[-1] if cluster.scrapes else None
        if scrape is None or not scrape.replicas:
            return current
        ready = len(scrape.replicas)
        total = sum(gauges.waiting for gauges in scrape.replicas)
        ratio = total / ready / self.target
        if abs(ratio - 1.0) <= TOLERANCE:
            return current
        desired = math.ceil(ratio * ready)
        pending = cluster.pending(now)
        if desired > current and pending:
            # Missing metrics: count starting pods as idle, and keep the scale-up only if it holds.
            cautious = total / (ready + pending) / self.target
            if cautious <= 1.0 + TOLERANCE:
                return current
            desired = math.ceil(cautious * (ready + pending))
        return desired

    def step(self, cluster: SimCluster, now: float) -> Command:
        current = cluster.target
        recommendation = self.bounds.clamp(self._recommend(cluster, now))
        history = self._recommendations
        history.append((now, recommendation))
        while history and history[0][0] < now - DOWN_STABILIZATION_S:
            history.popleft()
        if recommendation >= current:
            desired = min(recommendation, max(current * 2, current + 4))
        else:
            desired = min(current, max(value for _, value in history))
        desired = self.bounds.clamp(desired)
        note = (
            f"average waiting {self._average(cluster):.1f} / target {self.target:g}"
            if desired != current
            else ""
        )
        return Command(desired, note=note)

    @staticmethod
    def _average(cluster: SimCluster) -> float:
        scrape = cluster.scrapes[-1] if cluster.scrapes else None
        if scrape is None or not scrape.replicas:
            return 0.0
        return sum(gauges.waiting for gauges in scrape.replicas) / len(scrape.replicas)
