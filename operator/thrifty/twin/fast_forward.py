"""The fast-forward driver: N twins in simulated time, fed by a trace through a dispatch policy.

Time moves from arrival to arrival. Before each arrival every twin runs the steps that start
before it (a busy twin's last step may end after it, so a dispatch policy sees each twin as of
its latest step boundary, as a router polling real servers would); an idle twin jumps straight to
the arrival. Runs of pure decode steps are advanced in one call (`Engine.decode_run`), which is
what makes an hour of traffic take seconds.

    sim = Simulation(dispatch=RoundRobin())
    sim.add_twin(config, preloaded=True)
    for request in requests:
        sim.submit(request)
    result = sim.finish()

`replay(requests, configs)` does exactly that. For autoscaling studies, `add_twin(at=...)` starts
a twin that serves only after its model load time and `retire_twin` drains one.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence

from thrifty.twin.config import EngineConfig
from thrifty.twin.engine import Engine, EngineRequest, RequestRejectedError, RequestState, StepOutcome
from thrifty.twin.replay_results import LatencyHistogram, ReplayResult, RequestResult, TwinSeries
from thrifty.twin.trace_requests import TraceRequest


class SimTwin:
    """One simulated server: an engine, its own clock, and its sampled history."""

    def __init__(
        self,
        twin_id: int,
        config: EngineConfig,
        *,
        started_s: float,
        preloaded: bool,
        sample_interval_s: float,
        decode_runs: bool,
        on_outcome: Callable[[SimTwin, StepOutcome], None],
        step_time_scale: float = 1.0,
    ) -> None:
        self.twin_id = twin_id
        self.config = config
        self.engine = Engine(config, step_time_scale=step_time_scale)
        self.ready_s = started_s if preloaded else started_s + self.engine.sizing.load_seconds
        self.retired_s: float | None = None
        """When the twin stopped taking requests; it stops (and stops costing) once drained."""
        self.clock = self.ready_s
        self.series = TwinSeries(twin_id, config.tensor_parallel_size, started_s, self.ready_s)
        self._interval = sample_interval_s
        self._next_sample_s = started_s
        self._decode_runs = decode_runs
        self._on_outcome = on_outcome

    @property
    def retired(self) -> bool:
        return self.retired_s is not None

    def is_ready(self, now: float) -> bool:
        """Loaded, and not retired: a candidate for dispatch at `now`."""
        return self.retired_s is None and self.ready_s <= now

    def advance_to(self, time_s: float) -> None:
        """Run every step that starts before `time_s`; an idle twin waits until `time_s`."""
        engine = self.engine
        clock = self.clock
        while clock < time_s and engine.has_work:
            outcome = engine.decode_run(clock, time_s) if self._decode_runs else None
            if outcome is None:
                plan = engine.plan_step(clock)
                if plan is None:  # nothing can move until a request arrives or leaves
                    break
                outcome = engine.finish_step(plan, clock + plan.duration_s)
            clock = outcome.end_s
            self._on_outcome(self, outcome)
            if clock >= self._next_sample_s:
                self._sample_until(clock)
        if self.retired_s is not None and not engine.has_work and self.series.stopped_s is None:
            self.series.stopped_s = max(clock, self.retired_s)
        if clock < time_s and math.isfinite(time_s):
            clock = time_s
        self.clock = clock
        if math.isfinite(time_s):
            self._sample_until(time_s)

    def _sample_until(self, time_s: float) -> None:
        series = self.series
        engine = self.engine
        if self.series.stopped_s is not None:
            return
        while self._next_sample_s <= time_s:
            series.times.append(self._next_sample_s)
            series.running.append(engine.num_running)
            series.waiting.append(engine.num_waiting)
            series.kv_usage.append(engine.kv_usage)
            series.preemptions.append(engine.preemptions_total)
            self._next_sample_s += self._interval


Dispatch = Callable[[TraceRequest, Sequence[SimTwin]], int]
"""Picks the twin for a request: an index into the twins that are ready now (never empty)."""


class RoundRobin:
    """The default dispatch: each ready twin in turn."""

    def __init__(self) -> None:
        self._turn = 0

    def __call__(self, request: TraceRequest, twins: Sequence[SimTwin]) -> int:
        index = self._turn % len(twins)
        self._turn += 1
        return index


class Simulation:
    """Twins in simulated time, requests submitted in arrival order."""

    def __init__(
        self, *, dispatch: Dispatch | None = None, sample_interval_s: float = 1.0, decode_runs: bool = True
    ) -> None:
        self.dispatch: Dispatch = dispatch if dispatch is not None else RoundRobin()
        self.twins: list[SimTwin] = []
        self.now = 0.0
        self.itl_tokens = LatencyHistogram()
        self._interval = sample_interval_s
        self._decode_runs = decode_runs
        self._held: deque[tuple[TraceRequest, str]] = deque()
        self._results: list[RequestResult | None] = []
        self._slot: dict[str, tuple[int, TraceRequest, int]] = {}

    def add_twin(self, config: EngineConfig, *, at: float | None = None, preloaded: bool = False) -> SimTwin:
        """Start a twin at `at` (default now); it serves after its load time unless `preloaded`."""
        start = self.now if at is None else at
        twin = SimTwin(
            len(self.twins),
            config,
            started_s=start,
            preloaded=preloaded,
            sample_interval_s=self._interval,
            decode_runs=self._decode_runs,
            on_outcome=self._absorb,
        )
        self.twins.append(twin)
        return twin

    def retire_twin(self, twin_id: int) -> None:
        """Stop sending requests to a twin; it finishes what it holds, then stops (and stops costing)."""
        twin = self.twins[twin_id]
        twin.advance_to(self.now)
        twin.retired_s = self.now
        twin.advance_to(self.now)

    def submit(self, request: TraceRequest) -> None:
        """A request arrives at `request.arrival_s` (not before the previous one)."""
        if request.arrival_s < self.now:
            raise ValueError(
                f"request {request.request_id or len(self._results)}: arrives at {request.arrival_s}s, "
                f"before the simulation's time {self.now}s; submit requests in arrival order"
            )
        request_id = request.request_id or str(len(self._results))
        self._results.append(None)
        self.advance_to(request.arrival_s)
        self._held.append((request, request_id))
        self._dispatch_held()

    def advance_to(self, time_s: float) -> None:
        """Move every twin to `time_s`, handing held requests to twins as they finish loading."""
        while self._held:
            upcoming = [
                twin.ready_s for twin in self.twins if not twin.retired and self.now < twin.ready_s <= time_s
            ]
            if not upcoming:
                break
            ready_at = min(upcoming)
            self._advance_twins(ready_at)
            self._dispatch_held()
        self._advance_twins(time_s)

    def finish(self) -> ReplayResult:
        """Run until every twin is idle; the results of every submitted request."""
        if self._held:
            self.advance_to(max((twin.ready_s for twin in self.twins), default=self.now))
        for twin in self.twins:
            twin.advance_to(math.inf)
        end = max([self.now, *(twin.clock for twin in self.twins)])
        self._advance_twins(end)
        first_held = len(self._results) - len(self._held)
        for offset, (request, request_id) in enumerate(self._held):
            self._results[first_held + offset] = self._rejected(request, request_id, "no twin was ever ready")
        self._held.clear()
        results = [result for result in self._results if result is not None]
        return ReplayResult(results, [twin.series for twin in self.twins], self.itl_tokens, end)

    # ---- internals ----

    def _advance_twins(self, time_s: float) -> None:
        for twin in self.twins:
            twin.advance_to(time_s)
        self.now = max(self.now, time_s)

    def _dispatch_held(self) -> None:
        candidates = [twin for twin in self.twins if twin.is_ready(self.now)]
        if not candidates:
            return
        while self._held:
            request, request_id = self._held.popleft()
            position = len(self._results) - len(self._held) - 1
            twin = candidates[self.dispatch(request, candidates)]
            engine_request = EngineRequest(
                request_id, request.prompt_tokens, request.output_tokens, request.block_hashes
            )
            try:
                twin.engine.add_request(engine_request, self.now)
            except RequestRejectedError as error:
                self._results[position] = self._rejected(request, request_id, str(error))
                continue
            if twin.clock < self.now:
                twin.clock = self.now
            self._slot[request_id] = (position, request, twin.twin_id)

    @staticmethod
    def _rejected(request: TraceRequest, request_id: str, reason: str) -> RequestResult:
        return RequestResult(
            request_id,
            request.arrival_s,
            request.prompt_tokens,
            request.output_tokens,
            twin_id=None,
            ttft_s=None,
            itl_s=None,
            e2e_s=None,
            queue_s=None,
            rejected=reason,
        )

    def _absorb(self, twin: SimTwin, outcome: StepOutcome) -> None:
        histogram = self.itl_tokens
        for _request, _count, gap in outcome.emitted:
            if gap is not None:
                histogram.add(gap)
        for gap, weight in outcome.repeated_gaps:
            histogram.add(gap, weight)
        for state in outcome.finished:
            self._record(state)

    def _record(self, state: RequestState) -> None:
        position, request, twin_id = self._slot.pop(state.request_id)
        assert state.first_token_s is not None
        assert state.last_token_s is not None
        assert state.first_scheduled_s is not None
        itl = None
        if state.output_tokens > 1:
            itl = (state.last_token_s - state.first_token_s) / (state.output_tokens - 1)
        self._results[position] = RequestResult(
            state.request_id,
            request.arrival_s,
            state.prompt_tokens,
            state.output_tokens,
            twin_id,
            ttft_s=state.first_token_s - request.arrival_s,
            itl_s=itl,
            e2e_s=state.last_token_s - request.arrival_s,
            queue_s=state.first_scheduled_s - request.arrival_s,
            cached_tokens=state.cached_tokens,
            num_preemptions=state.num_preemptions,
        )


def replay(
    requests: Sequence[TraceRequest],
    twins: Sequence[EngineConfig],
    *,
    dispatch: Dispatch | None = None,
    sample_interval_s: float = 1.0,
    decode_runs: bool = True,
) -> ReplayResult:
    """Replay `requests` (any order; sorted by arrival) against loaded twins, one per config."""
    if not twins:
        raise ValueError("twins: replay needs at least one twin configuration")
    simulation = Simulation(dispatch=dispatch, sample_interval_s=sample_interval_s, decode_runs=decode_runs)
    for config in twins:
        simulation.add_twin(config, at=0.0, preloaded=True)
    for request in sorted(requests, key=lambda item: item.arrival_s):
        simulation.submit(request)
    return simulation.finish()
