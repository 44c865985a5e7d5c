"""KubeAI's model autoscaler.

Algorithm, from substratusai/kubeai: internal/modelautoscaler/autoscaler.go (a simple moving
average of the model's active requests, desired = ceil(average / targetRequests)),
internal/config/system.go (interval 10 s, time window 10 min, so 60 points in the average;
RequiredConsecutiveScaleDowns = ceil(scaleDownDelaySeconds / interval)) and
internal/modelclient/scale.go (scale-ups apply at once; a scale-down applies only after that many
consecutive scale-down recommendations). Defaults from api/k8s/v1/model_types.go:
targetRequests 100, scaleDownDelaySeconds 30.

Active requests are what KubeAI's proxy has in flight to the model: here, running plus waiting
over all replicas. The average starts filled with the first observation, as KubeAI restores it
from its state ConfigMap instead of starting from zeros.
"""

from __future__ import annotations

import math
from collections import deque

from bench.autoscale.cluster import SimCluster
from bench.autoscale.policies.base import Bounds, Command

INTERVAL_S = 10.0
TIME_WINDOW_S = 600.0


class KubeAI:
    period_s = INTERVAL_S

    def __init__(
        self, bounds: Bounds, *, target_requests: float = 100.0, scale_down_delay_s: float = 30.0
    ) -> None:
        self.name = "kubeai"
        self.bounds = bounds
        self.target = target_requests
        self.required_scale_downs = math.ceil(scale_down_delay_s / INTERVAL_S)
        self._history: deque[float] = deque(maxlen=math.ceil(TIME_WINDOW_S / INTERVAL_S))
        self._consecutive_scale_downs = 0

    def step(self, cluster: SimCluster, now: float) -> Command:
        scrape = cluster.scrapes[-1] if cluster.scrapes else None
        active = sum(g.running + g.waiting for g in scrape.replicas) if scrape is not None else 0
        if not self._history:
            self._history.extend([float(active)] * (self._history.maxlen or 1))
        self._history.append(float(active))
        average = sum(self._history) / len(self._history)
        desired = self.bounds.clamp(math.ceil(average / self.target))
        current = cluster.target
        if desired < current:
            # As in KubeAI, the counter is not reset by the scale-down it lets through.
            if self._consecutive_scale_downs < self.required_scale_downs:
                self._consecutive_scale_downs += 1
                return Command(current)
        else:
            self._consecutive_scale_downs = 0
        note = f"average active {average:.0f} / target {self.target:g}" if desired != current else ""
        return Command(desired, note=note)
