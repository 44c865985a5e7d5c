"""What every autoscaler in the benchmark implements, and what it may look at."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bench.autoscale.cluster import SimCluster


@dataclass(frozen=True, slots=True)
class Command:
    """What an autoscaler asks for after one evaluation."""

    replicas: int
    cap: int | None = None
    """Thrifty only: the effective per-replica cap (None leaves it)."""
    engine_flag: int | None = None
    """Thrifty only: the engine's --max-num-seqs (a rolling restart when it changes)."""
    engine_tokens: int | None = None
    """Thrifty only: the engine's --max-num-batched-tokens (None leaves it; a roll when it changes)."""
    note: str = ""
    """Why, when something changes (kept for the decision log)."""


class Autoscaler(Protocol):
    """One scaling algorithm with its own state. `step` is called every `period_s` of simulated time."""

    name: str
    period_s: float

    def step(self, cluster: SimCluster, now: float) -> Command: ...


@dataclass(frozen=True, slots=True)
class Bounds:
    """The replica range every policy gets (spec.scaling.replicas of the benchmark's model)."""

    min_replicas: int
    max_replicas: int

    def clamp(self, replicas: int) -> int:
        return max(self.min_replicas, min(self.max_replicas, replicas))
