"""The router's Prometheus metrics, in a registry of its own (served at /metrics).

Names start with `thrifty_router_`. Per tier: requests by final HTTP status, prompt and completion
tokens, estimated cost (tokens times the tier's costWeight), queue wait and length, the replica
each request went to and why (affinity hits are reasons `prefix` and `home`), the in-flight
count per replica and the cap. Router-wide: escalations by trigger, fail-open decisions, config
reloads. Label children are created once per tier and reused: a label lookup per request would
cost more than the rest of the bookkeeping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

_QUEUE_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
)
_FIRST_BYTE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


@dataclass(frozen=True, slots=True)
class TierMetrics:
    """The per-tier children, bound once."""

    prompt_tokens: Counter
    completion_tokens: Counter
    cost: Counter
    queue_seconds: Histogram
    first_byte_seconds: Histogram


@dataclass(frozen=True, slots=True)
class TierSnapshot:
    """A tier's live state, read when Prometheus scrapes (so requests pay nothing for gauges)."""

    name: str
    cap: int
    queue_length: int
    in_flight: dict[str, int]
    """Replica -> requests in flight; its keys are the ready replicas."""


class _StateCollector:
    def __init__(self, snapshots: Callable[[], Iterable[TierSnapshot]]) -> None:
        self._snapshots = snapshots

    def collect(self) -> Iterator[Metric]:
        in_flight = GaugeMetricFamily(
            "thrifty_router_in_flight", "Requests in flight on a replica", labels=("tier", "replica")
        )
        ready = GaugeMetricFamily(
            "thrifty_router_ready_replicas",
            "Ready replicas (EndpointSlice endpoints) of a tier",
            labels=("tier",),
        )
        queue = GaugeMetricFamily(
            "thrifty_router_queue_length", "Requests waiting in a tier's queue", labels=("tier",)
        )
        cap = GaugeMetricFamily(
            "thrifty_router_max_in_flight_per_replica",
            "The per-replica cap the router enforces for a tier",
            labels=("tier",),
        )
        for snapshot in self._snapshots():
            for replica, count in sorted(snapshot.in_flight.items()):
                in_flight.add_metric((snapshot.name, replica), count)
            ready.add_metric((snapshot.name,), len(snapshot.in_flight))
            queue.add_metric((snapshot.name,), snapshot.queue_length)
            cap.add_metric((snapshot.name,), snapshot.cap)
        yield from (in_flight, ready, queue, cap)


class RouterMetrics:
    def __init__(self, snapshots: Callable[[], Iterable[TierSnapshot]]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        registry = self.registry
        registry.register(_StateCollector(snapshots))
        self.requests = Counter(
            "thrifty_router_requests",
            "Requests answered, by the tier that answered last and the HTTP status",
            ("tier", "code"),
            registry=registry,
        )
        self._prompt_tokens = Counter(
            "thrifty_router_prompt_tokens",
            "Prompt tokens sent to a tier (from the replica's usage report, else estimated at 4 characters per token)",
            ("tier",),
            registry=registry,
        )
        self._completion_tokens = Counter(
            "thrifty_router_completion_tokens",
            "Completion tokens a tier generated (from the usage report, else counted from streamed events)",
            ("tier",),
            registry=registry,
        )
        self._cost = Counter(
            "thrifty_router_cost",
            "Estimated cost: tokens times the tier's costWeight (relative units)",
            ("tier",),
            registry=registry,
        )
        self.escalations = Counter(
            "thrifty_router_escalations",
            "Requests retried (or, for LowConfidence, sent) one tier up",
            ("from_tier", "to_tier", "trigger"),
            registry=registry,
        )
        self.wakes = Counter(
            "thrifty_router_wakes",
            "Requests to wake a tier's model from zero replicas (at most one per model per 10s)",
            ("tier",),
            registry=registry,
        )
        self._queue_seconds = Histogram(
            "thrifty_router_queue_seconds",
            "Time a request waited in a tier's queue for a replica under its cap",
            ("tier",),
            buckets=_QUEUE_BUCKETS,
            registry=registry,
        )
        self._first_byte = Histogram(
            "thrifty_router_first_byte_seconds",
            "From dispatch to the replica's first response byte (TTFT for streamed requests)",
            ("tier",),
            buckets=_FIRST_BYTE_BUCKETS,
            registry=registry,
        )
        self.picks = Counter(
            "thrifty_router_replica_picks",
            "Replica choices by reason: prefix and home are affinity hits, spill and least_loaded are not",
            ("tier", "reason"),
            registry=registry,
        )
        self.fail_open = Counter(
            "thrifty_router_fail_open",
            "Requests sent without the router's own state: to the Service, or to the least-loaded replica",
            ("tier", "reason"),
            registry=registry,
        )
        self.config_reloads = Counter(
            "thrifty_router_config_reloads",
            "Configuration file reloads, by result (ok, invalid)",
            ("result",),
            registry=registry,
        )

    def tier(self, name: str) -> TierMetrics:
        return TierMetrics(
            prompt_tokens=self._prompt_tokens.labels(name),
            completion_tokens=self._completion_tokens.labels(name),
            cost=self._cost.labels(name),
            queue_seconds=self._queue_seconds.labels(name),
            first_byte_seconds=self._first_byte.labels(name),
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
