"""A model's replicas in simulated time: the twin's simulated servers plus what Kubernetes and
Thrifty's router would add around them.

The twin package gives simulated vLLM servers (`SimTwin`: an engine with its own clock) and a
fast-forward driver that advances every server at every arrival. This adapter drives the same
`SimTwin`s itself, without changing the twin, because it needs what that driver lacks:

- lazy advancement: a server is advanced only when a request may go to it and at each scrape,
  so its decode runs span long stretches (the twin's driver steps all N servers at each of the
  hour's ~300,000 arrivals, which is several times slower);
- dispatch to the less loaded of two replicas drawn at random (seeded): the "power of two
  choices" that Envoy's least-request balancer uses by default. Every policy gets the same;
- replica start-up (a new replica loads for `startup_s`, paid in GPU time) and drain on
  scale-down (a retired replica finishes what it holds, then stops costing);
- a rolling restart for a new engine `--max-num-seqs` (maxSurge 25%, maxUnavailable 0: surge
  pods load, then old ones drain);
- the effective cap, on one of two data paths. Behind Thrifty's router (`router_queue`), the
  router never sends a replica more than the cap: requests beyond it wait in the router's queue,
  first come first served, and go to the first replica that finishes a request or becomes ready,
  as `thrifty.router.tier_queue` does. Behind a plain Service or gateway (the published
  autoscalers), the cap is the engine's admission limit (`max_num_seqs` of the running engine,
  whose KV cache stays sized for the flag it started with) and requests beyond it wait in the
  queue of the engine they were sent to, even after other replicas have room;
- scrapes of every replica's gauges, and TTFT and ITL histograms in 5-second buckets, which the
  policies read as they would read Prometheus.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from bench.autoscale.histograms import BucketedHistogram

from thrifty.twin import (
    EngineConfig,
    EngineRequest,
    RequestRejectedError,
    SimTwin,
    StepOutcome,
    TraceRequest,
    size_server,
)

BUCKET_S = 5.0
ROUTER_STEP_S = 0.25
"""While the router holds requests, the twins advance together in steps this long (a slot that
frees inside a step goes to the oldest waiter at once; this only orders the twins)."""


@dataclass(frozen=True, slots=True)
class TwinGauges:
    """One replica at one scrape."""

    twin_id: int
    running: int
    waiting: int
    kv_usage: float
    preemptions_total: int
    finished_total: int
    cap: int
    prefix_hits_total: int = 0
    prefix_queries_total: int = 0


@dataclass(frozen=True, slots=True)
class Scrape:
    time: float
    replicas: tuple[TwinGauges, ...]
    """Ready (serving) replicas only: starting ones have no metrics yet."""
    router_queue: int = 0
    """Requests the router held back (`thrifty_router_queue_length`): 0 without `router_queue`."""


@dataclass
class RequestTally:
    """Per-request SLO bookkeeping, kept as counts (an hour holds hundreds of thousands)."""

    submitted: int = 0
    finished: int = 0
    within_slo: int = 0
    rejected: int = 0


class SimCluster:
    """The replicas of one model: desired count, engine flag, effective cap, and their twins."""

    def __init__(
        self,
        config: EngineConfig,
        *,
        startup_s: float,
        ttft_slo_s: float,
        itl_slo_s: float,
        seed: int = 1,
        surge_share: float = 0.25,
        scrape_interval_s: float = 5.0,
        keep_scrapes_s: float = 2000.0,
        keep_sizes_s: float = 300.0,
        step_time_scale: float = 1.0,
        router_queue: bool = False,
    ) -> None:
        """`step_time_scale`: the twins' steps take this many times the calibrated time (an engine
        the calibration has wrong; the policies still see `config` as calibrated). `router_queue`:
        requests beyond the cap wait in the router, not in an engine (see the module doc)."""
        self._base = config
        self.router_queue = router_queue
        self.step_time_scale = step_time_scale
        self.engine_flag = config.max_num_seqs
        self.engine_tokens = config.max_num_batched_tokens
        self.cap = config.max_num_seqs
        self.target = 0
        self.startup_s = startup_s
        self.surge_share = surge_share
        self.scrape_interval_s = scrape_interval_s
        self.twins: list[SimTwin] = []
        """Every twin ever started, retired ones included (they hold GPU time until drained)."""
        self.active: list[SimTwin] = []
        """Twins not retired: serving or still loading."""
        self.rollouts = 0
        self.scrapes: deque[Scrape] = deque(maxlen=int(keep_scrapes_s / scrape_interval_s) + 1)
        self.ttft = BucketedHistogram(BUCKET_S)
        self.itl = BucketedHistogram(BUCKET_S)
        self.finished: list[int] = []
        self.finished_sizes: deque[tuple[float, int, int]] = deque()
        """(time, prompt tokens, output tokens) of the requests finished in the last `keep_sizes_s`:
        the token histograms a Prometheus window would hold."""
        self._keep_sizes_s = keep_sizes_s
        self.tally = RequestTally()
        self.now = 0.0
        self._ttft_slo = ttft_slo_s
        self._itl_slo = itl_slo_s
        self._rng = random.Random(seed)
        self._arrivals: dict[str, float] = {}
        self._held: deque[TraceRequest] = deque()
        self._configs: dict[tuple[int, int], EngineConfig] = {}
        weights_s = size_server(config).load_seconds - config.load_overhead_s
        self._load_overhead = max(0.0, startup_s - weights_s)

    # ---- configuration ----

    def _engine_config(self) -> EngineConfig:
        """The configuration new pods start with: the base, with the engine flags now asked for."""
        key = (self.engine_flag, self.engine_tokens)
        config = self._configs.get(key)
        if config is None:
            config = dataclasses.replace(
                self._base,
                max_num_seqs=self.engine_flag,
                max_num_batched_tokens=self.engine_tokens,
                load_overhead_s=self._load_overhead,
            )
            self._configs[key] = config
        return config

    def _current(self, twin: SimTwin) -> bool:
        """Whether `twin` runs the engine flags now asked for (else a roll replaces it)."""
        return (twin.config.max_num_seqs, twin.config.max_num_batched_tokens) == (
            self.engine_flag,
            self.engine_tokens,
        )

    def limit(self, twin: SimTwin) -> int:
        """Requests `twin` may hold: the cap, within the flag the engine started with."""
        return min(self.cap, twin.config.max_num_seqs)

    def _apply_cap(self, twin: SimTwin) -> None:
        if self.router_queue:
            return  # the router enforces the cap; the engine keeps its flag
        limit = self.limit(twin)
        if twin.engine.config.max_num_seqs != limit:
            twin.engine.config = dataclasses.replace(twin.config, max_num_seqs=limit)

    def _add_twin(self, at: float, *, preloaded: bool) -> SimTwin:
        twin = SimTwin(
            len(self.twins),
            self._engine_config(),
            started_s=at,
            preloaded=preloaded,
            sample_interval_s=3600.0,
            decode_runs=True,
            on_outcome=self._absorb,
            step_time_scale=self.step_time_scale,
        )
        self._apply_cap(twin)
        self.twins.append(twin)
        self.active.append(twin)
        self.finished.append(0)
        return twin

    # ---- traffic ----

    def submit(self, request: TraceRequest) -> None:
        """A request arrives at `request.arrival_s` (not before the previous one)."""
        self.now = request.arrival_s
        self.tally.submitted += 1
        self._arrivals[request.request_id] = request.arrival_s
        self._held.append(request)
        self._dispatch_held()

    def _dispatch_held(self) -> None:
        now = self.now
        ready = [twin for twin in self.active if twin.is_ready(now)]
        if not ready:
            return
        while self._held:
            twin = self._pick(ready, now) if not self.router_queue else self._pick_with_room(ready, now)
            if twin is None:
                return  # every replica at its cap: the rest wait in the router
            if not self._held:
                return  # advancing the replicas to now handed the freed slots to every waiter
            self._send(twin, self._held.popleft(), now)

    def _send(self, twin: SimTwin, request: TraceRequest, now: float) -> None:
        try:
            twin.engine.add_request(
                EngineRequest(
                    request.request_id, request.prompt_tokens, request.output_tokens, request.block_hashes
                ),
                now,
            )
        except RequestRejectedError:
            self.tally.rejected += 1
            self._arrivals.pop(request.request_id, None)
            return
        if twin.clock < now:
            twin.clock = now

    @staticmethod
    def _load(twin: SimTwin) -> int:
        return twin.engine.num_running + twin.engine.num_waiting

    def _pick_with_room(self, ready: list[SimTwin], now: float) -> SimTwin | None:
        """The router's choice: the less loaded of two drawn at random if it has room under the cap,
        else the least loaded replica with room (all advanced to now), else None."""
        choice = self._pick(ready, now)
        if self._load(choice) < self.limit(choice):
            return choice
        for twin in ready:
            twin.advance_to(now)
        roomy = [twin for twin in ready if self._load(twin) < self.limit(twin)]
        return min(roomy, key=lambda twin: (self._load(twin), twin.twin_id)) if roomy else None

    def _pick(self, ready: list[SimTwin], now: float) -> SimTwin:
        """The less loaded of two ready replicas drawn at random (both advanced to now first)."""
        if len(ready) == 1:
            choice = ready[0]
            choice.advance_to(now)
            return choice
        first, second = self._rng.sample(ready, 2)
        first.advance_to(now)
        second.advance_to(now)
        return first if self._load(first) <= self._load(second) else second

    def _absorb(self, twin: SimTwin, outcome: StepOutcome) -> None:
        end = outcome.end_s
        ttft, itl, arrivals = self.ttft, self.itl, self._arrivals
        gaps = [gap for _state, _count, gap in outcome.emitted if gap is not None]
        if len(gaps) < len(outcome.emitted):
            for state, _count, gap in outcome.emitted:
                if gap is None:
                    ttft.add(end, end - arrivals.get(state.request_id, state.arrival_s))
        itl.add_all(end, gaps)
        for gap, weight in outcome.repeated_gaps:
            itl.add(end, gap, weight)
        if outcome.finished:
            if self._held and self.router_queue and twin.is_ready(end):
                # The router hands the freed slots to the oldest waiters at once.
                while self._held and self._load(twin) < self.limit(twin):
                    self._send(twin, self._held.popleft(), end)
            self.finished[twin.twin_id] += len(outcome.finished)
            tally = self.tally
            sizes = self.finished_sizes
            for state in outcome.finished:
                sizes.append((end, state.prompt_tokens, state.max_output_tokens))
                tally.finished += 1
                arrival = arrivals.pop(state.request_id, state.arrival_s)
                first, last = state.first_token_s, state.last_token_s
                if first is None or last is None:
                    continue
                gap = (last - first) / (state.output_tokens - 1) if state.output_tokens > 1 else 0.0
                if first - arrival <= self._ttft_slo and gap <= self._itl_slo:
                    tally.within_slo += 1

    def advance_to(self, time_s: float) -> None:
        """Every twin to `time_s` (held requests go out as soon as a replica is ready or, behind
        the router, has room)."""
        while self._held:
            upcoming = [twin.ready_s for twin in self.active if self.now < twin.ready_s <= time_s]
            if self.router_queue and any(twin.is_ready(self.now) for twin in self.active):
                # Slots free as requests finish: twins advance together in short steps, so the
                # waiters go out in about the order the slots free up.
                upcoming.append(min(time_s, self.now + ROUTER_STEP_S))
            if not upcoming:
                break
            moment = min(upcoming)
            self._sync(moment)
            self._dispatch_held()
            if moment >= time_s:
                break
        self._sync(time_s)

    def _sync(self, time_s: float) -> None:
        self.now = max(self.now, time_s)
        for twin in self.twins:
            if twin.series.stopped_s is None:
                twin.advance_to(time_s)

    def finish(self) -> float:
        """Run every twin until idle; the time the last one went idle."""
        if self._held:
            self.advance_to(max((twin.ready_s for twin in self.active), default=self.now))
        while self._held and self.router_queue and self.active:
            self.advance_to(self.now + ROUTER_STEP_S)
        for twin in self.twins:
            twin.advance_to(math.inf)
        return max([self.now, *(twin.clock for twin in self.twins)])

    def gpu_hours(self, end_s: float) -> float:
        return sum(twin.series.gpu_seconds(end_s) for twin in self.twins) / 3600

    # ---- actions ----

    def start(self, replicas: int) -> None:
        """`replicas` loaded replicas at time 0."""
        self.target = replicas
        for _ in range(replicas):
            self._add_twin(0.0, preloaded=True)

    def set_cap(self, cap: int) -> None:
        self.cap = max(1, cap)
        for twin in self.active:
            self._apply_cap(twin)
        if self.router_queue:
            self._dispatch_held()

    def set_engine(self, flag: int, tokens: int, now: float) -> None:
        """New engine flags (--max-num-seqs, --max-num-batched-tokens): a rolling restart."""
        if (flag, tokens) != (self.engine_flag, self.engine_tokens):
            self.engine_flag, self.engine_tokens = flag, tokens
            self.rollouts += 1
            self.reconcile(now)

    def scale_to(self, replicas: int, now: float) -> None:
        self.target = max(0, replicas)
        self.reconcile(now)

    def reconcile(self, now: float) -> None:
        """Move the twins toward the target count and engine flag, as a Deployment controller with
        maxSurge 25% and maxUnavailable 0 would."""
        old = [twin for twin in self.active if not self._current(twin)]
        new = [twin for twin in self.active if self._current(twin)]
        ready_new = sum(1 for twin in new if twin.is_ready(now))
        while old and ready_new + len(old) > self.target:
            victim = self._least_useful(old, now)
            self._retire(victim, now)
            old.remove(victim)
        if not old:
            while len(new) > self.target:
                victim = self._least_useful(new, now)
                self._retire(victim, now)
                new.remove(victim)
        surge = math.ceil(self.target * self.surge_share) if old else 0
        while len(new) < self.target and len(new) + len(old) < self.target + surge:
            new.append(self._add_twin(now, preloaded=False))

    def _least_useful(self, twins: Iterable[SimTwin], now: float) -> SimTwin:
        """The replica to remove first: a still-loading one (newest first), else the least loaded."""
        candidates = list(twins)
        loading = [twin for twin in candidates if not twin.is_ready(now)]
        if loading:
            return max(loading, key=lambda twin: (twin.ready_s, twin.twin_id))
        for twin in candidates:
            twin.advance_to(now)
        return min(
            candidates, key=lambda twin: (twin.engine.num_running + twin.engine.num_waiting, -twin.twin_id)
        )

    def _retire(self, twin: SimTwin, now: float) -> None:
        twin.advance_to(now)
        twin.retired_s = now
        twin.advance_to(now)
        self.active.remove(twin)

    # ---- observation ----

    def ready(self, now: float) -> list[SimTwin]:
        return [twin for twin in self.active if twin.is_ready(now)]

    @property
    def rollout_in_progress(self) -> bool:
        return any(not self._current(twin) for twin in self.active)

    def pending(self, now: float) -> int:
        return sum(1 for twin in self.active if not twin.is_ready(now))

    def scrape(self, now: float) -> Scrape:
        """Gauges of every ready replica at `now` (call `advance_to(now)` first)."""
        gauges = tuple(
            TwinGauges(
                twin.twin_id,
                twin.engine.num_running,
                twin.engine.num_waiting,
                twin.engine.kv_usage,
                twin.engine.preemptions_total,
                self.finished[twin.twin_id],
                self.limit(twin),
                twin.engine.prefix_hits_total,
                twin.engine.prefix_queries_total,
            )
            for twin in self.ready(now)
        )
        scrape = Scrape(now, gauges, len(self._held) if self.router_queue else 0)
        self.scrapes.append(scrape)
        return scrape

    def sizes_since(self, start: float) -> list[tuple[float, int, int]]:
        """Requests finished after `start` (within the last `keep_sizes_s`)."""
        sizes = self.finished_sizes
        while sizes and sizes[0][0] < self.now - self._keep_sizes_s:
            sizes.popleft()
        return [entry for entry in sizes if entry[0] > start]

    def scrapes_since(self, start: float) -> list[Scrape]:
        return [scrape for scrape in self.scrapes if scrape.time > start]

    def gpus(self) -> int:
        """GPUs held by replicas that are not retired (loading ones included)."""
        return sum(twin.config.tensor_parallel_size for twin in self.active)
