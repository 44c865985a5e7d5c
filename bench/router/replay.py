"""A router in front of N twins, in simulated time: the driver every routing policy runs in.

What a policy may know is what a router in front of real servers knows, at the moment it decides:

- its own bookkeeping: which requests it sent where, which of them have produced their first
  token (a streaming router sees the first chunk) and which have finished. Those events reach the
  policy only once simulated time has passed them: a step that is still running when a request
  arrives has not reported yet;
- the replicas' metrics (waiting queue, KV-cache usage), read fresh at each decision, which is
  more than a scraping router gets (it flatters the baselines that use them).

The twins themselves are the twin package's `SimTwin`s, run to each arrival and never touched
otherwise. The result keeps, per request, its TTFT, end-to-end time and the prompt tokens its
replica found cached, and per replica the time-averaged number of requests in flight.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from thrifty.twin import EngineConfig, EngineRequest, SimTwin, StepOutcome, TraceRequest, percentile


class Fleet(Protocol):
    """The replicas as a policy sees them."""

    @property
    def size(self) -> int: ...

    def in_flight(self, replica: int) -> int:
        """Requests the router has outstanding on a replica."""
        ...

    def waiting(self, replica: int) -> int:
        """The replica's `vllm:num_requests_waiting`."""
        ...

    def kv_usage(self, replica: int) -> float:
        """The replica's `vllm:kv_cache_usage_perc` (0..1)."""
        ...


class Policy(Protocol):
    name: str

    def pick(self, request: TraceRequest, fleet: Fleet) -> int:
        """The replica (0..fleet.size-1) for a request arriving now."""
        ...

    def first_token(self, request_id: str) -> None: ...

    def finished(self, request_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Served:
    replica: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    cached_tokens: int
    ttft_s: float
    e2e_s: float


@dataclass
class RouterRun:
    policy: str
    replicas: int
    served: list[Served]
    rejected: int
    end_s: float
    mean_in_flight: list[float]
    """Per replica, requests in flight averaged over the run."""
    wall_s: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def hit_rate(self) -> float:
        prompt = sum(item.prompt_tokens for item in self.served)
        return sum(item.cached_tokens for item in self.served) / prompt if prompt else math.nan

    def ttft(self, q: float) -> float:
        return percentile([item.ttft_s for item in self.served], q)

    @property
    def load_imbalance(self) -> float:
        """Max over mean of the time-averaged in-flight requests per replica."""
        mean = sum(self.mean_in_flight) / len(self.mean_in_flight)
        return max(self.mean_in_flight) / mean if mean > 0 else math.nan

    @property
    def request_imbalance(self) -> float:
        """Max over mean of requests served per replica."""
        counts = [0] * self.replicas
        for item in self.served:
            counts[item.replica] += 1
        mean = sum(counts) / len(counts)
        return max(counts) / mean if mean > 0 else math.nan

    @property
    def output_tokens_per_s(self) -> float:
        if not self.served:
            return math.nan
        start = min(item.arrival_s for item in self.served)
        return sum(item.output_tokens for item in self.served) / max(1e-9, self.end_s - start)


class _Fleet:
    def __init__(self, twins: list[SimTwin]) -> None:
        self.twins = twins
        self.outstanding = [0] * len(twins)
        self.area = [0.0] * len(twins)
        self.changed = [0.0] * len(twins)

    @property
    def size(self) -> int:
        return len(self.twins)

    def in_flight(self, replica: int) -> int:
        return self.outstanding[replica]

    def waiting(self, replica: int) -> int:
        return self.twins[replica].engine.num_waiting

    def kv_usage(self, replica: int) -> float:
        return self.twins[replica].engine.kv_usage

    def shift(self, replica: int, delta: int, now: float) -> None:
        self.area[replica] += self.outstanding[replica] * (now - self.changed[replica])
        self.changed[replica] = now
        self.outstanding[replica] += delta


def replay_router(
    requests: Sequence[TraceRequest], config: EngineConfig, replicas: int, policy: Policy
) -> RouterRun:
    """Replay `requests` (sorted by arrival) through `policy` onto `replicas` loaded twins."""
    events: list[tuple[float, int, str]] = []  # (time, 0 first token / 1 finish, request id)
    placed: dict[str, int] = {}
    served: list[Served] = []

    def on_outcome(twin: SimTwin, outcome: StepOutcome) -> None:
        end = outcome.end_s
        for state, _count, gap in outcome.emitted:
            if gap is None:
                heapq.heappush(events, (end, 0, state.request_id))
        for state in outcome.finished:
            heapq.heappush(events, (end, 1, state.request_id))
            assert state.first_token_s is not None
            assert state.last_token_s is not None
            served.append(
                Served(
                    replica=twin.twin_id,
                    arrival_s=state.arrival_s,
                    prompt_tokens=state.prompt_tokens,
                    output_tokens=state.output_tokens,
                    cached_tokens=state.cached_tokens,
                    ttft_s=state.first_token_s - state.arrival_s,
                    e2e_s=state.last_token_s - state.arrival_s,
                )
            )

    twins = [
        SimTwin(
            index,
            config,
            started_s=0.0,
            preloaded=True,
            sample_interval_s=60.0,
            decode_runs=True,
            on_outcome=on_outcome,
        )
        for index in range(replicas)
    ]
    fleet = _Fleet(twins)

    def deliver(until: float) -> None:
        while events and events[0][0] <= until:
            time_s, kind, request_id = heapq.heappop(events)
            if kind == 0:
                policy.first_token(request_id)
            else:
                fleet.shift(placed.pop(request_id), -1, time_s)
                policy.finished(request_id)

    rejected = 0
    for request in sorted(requests, key=lambda item: item.arrival_s):
        now = request.arrival_s
        for twin in twins:
            twin.advance_to(now)
        deliver(now)
        choice = policy.pick(request, fleet)
        twin = twins[choice]
        engine_request = EngineRequest(
            request.request_id, request.prompt_tokens, request.output_tokens, request.block_hashes
        )
        try:
            twin.engine.add_request(engine_request, now)
        except ValueError:
            rejected += 1
            policy.finished(request.request_id)
            continue
        twin.clock = max(twin.clock, now)
        placed[request.request_id] = choice
        fleet.shift(choice, +1, now)
    for twin in twins:
        twin.advance_to(math.inf)
    end = max((event[0] for event in events), default=0.0)
    deliver(math.inf)
    end = max([end, *fleet.changed])
    for replica in range(replicas):
        fleet.shift(replica, 0, end)
    mean_in_flight = [area / end if end > 0 else 0.0 for area in fleet.area]
    return RouterRun(policy.name, replicas, served, rejected, end, mean_in_flight)
