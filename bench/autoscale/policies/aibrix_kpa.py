"""AIBrix's KPA (Knative-style pod autoscaler) on KV-cache usage.

Algorithm, from vllm-project/aibrix: pkg/controller/podautoscaler/algorithm/kpa.go and
scaler/kpa.go (after Knative's pkg/autoscaler/scaling/autoscaler.go):

- desired (stable) = ceil(stable value / target), desired (panic) = ceil(panic value / target),
  where the values are the metric summed over ready pods and averaged over the stable window
  (180 s, `observeWindowSeconds`) and the panic window (60 s, `panicWindowSeconds`);
- both clamped to [floor(ready / maxScaleDownRate), ceil(ready x maxScaleUpRate)], rates 2 and 2;
- panic mode starts when desired (panic) / ready >= 2.0 (`panic-threshold`) and ends a stable
  window after the last time that held; in panic the count never decreases;
- scale-up and scale-down tolerances 0.1: no change while the metric is within 10% of target;
- scale-down cooldown 300 s (`scale-down-cooldown-window`): the highest recommendation of the
  last 300 s wins; the reconcile runs every 10 s (DefaultResyncInterval).

Defaults from docs/source/features/autoscaling/metric-based-autoscaling.rst; the target, 0.5 of
the KV cache (`gpu_cache_usage_perc`), is the one of samples/autoscaling/kpa.yaml.
"""

from __future__ import annotations

import math
from collections import deque

from bench.autoscale.cluster import SimCluster
from bench.autoscale.policies.base import Bounds, Command

STABLE_WINDOW_S = 180.0
PANIC_WINDOW_S = 60.0
PANIC_THRESHOLD = 2.0
MAX_SCALE_UP_RATE = 2.0
MAX_SCALE_DOWN_RATE = 2.0
TOLERANCE = 0.1
SCALE_DOWN_COOLDOWN_S = 300.0


class AibrixKpa:
    period_s = 10.0

    def __init__(self, bounds: Bounds, *, target_kv: float = 0.5) -> None:
        self.name = "aibrix-kpa"
        self.bounds = bounds
        self.target = target_kv
        self._panic_since: float | None = None
        self._max_panic_pods = 0
        self._recommendations: deque[tuple[float, int]] = deque()

    def _window_value(self, cluster: SimCluster, now: float, window_s: float) -> float | None:
        scrapes = [scrape for scrape in cluster.scrapes_since(now - window_s) if scrape.replicas]
        if not scrapes:
            return None
        return sum(sum(g.kv_usage for g in scrape.replicas) for scrape in scrapes) / len(scrapes)

    def step(self, cluster: SimCluster, now: float) -> Command:
        current = cluster.target
        stable = self._window_value(cluster, now, STABLE_WINDOW_S)
        panic = self._window_value(cluster, now, PANIC_WINDOW_S)
        ready = max(1, len(cluster.ready(now)))
        if stable is None or panic is None:
            return Command(current)
        max_up = math.ceil(MAX_SCALE_UP_RATE * ready)
        max_down = math.floor(ready / MAX_SCALE_DOWN_RATE)
        stable_pods = min(max(math.ceil(stable / self.target), max_down), max_up)
        panic_pods = min(max(math.ceil(panic / self.target), max_down), max_up)

        over_panic = math.ceil(panic / self.target) / ready >= PANIC_THRESHOLD
        if over_panic:
            self._panic_since = now
        elif self._panic_since is not None and now - self._panic_since > STABLE_WINDOW_S:
            self._panic_since = None
            self._max_panic_pods = 0

        desired = stable_pods
        if self._panic_since is not None:
            desired = max(desired, panic_pods, self._max_panic_pods)
            self._max_panic_pods = desired
        else:
            # Tolerance: small deviations from the target do not move the count.
            per_pod = stable / ready / self.target
            if (desired > current and per_pod <= 1 + TOLERANCE) or (
                desired < current and per_pod >= 1 - TOLERANCE
            ):
                desired = current

        history = self._recommendations
        history.append((now, desired))
        while history and history[0][0] < now - SCALE_DOWN_COOLDOWN_S:
            history.popleft()
        if desired < current:
            desired = min(current, max(value for _, value in history))
        desired = self.bounds.clamp(desired)
        note = f"KV usage {stable:.2f} summed / target {self.target:g}" if desired != current else ""
        return Command(desired, note=note)
