"""Static provisioning: a fixed replica count all hour, sized for the peak. No autoscaler."""

from __future__ import annotations

from dataclasses import dataclass

from bench.autoscale.cluster import SimCluster
from bench.autoscale.policies.base import Command


@dataclass
class StaticPeak:
    replicas: int
    name: str = "static-peak"
    period_s: float = 60.0

    def step(self, cluster: SimCluster, now: float) -> Command:
        return Command(self.replicas)
