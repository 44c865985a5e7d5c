"""One vLLM V1 engine as a pure state machine: requests in, steps planned and completed, no clock.

A driver owns time. It asks for a step at time `now` (`plan_step`), lets the step's duration pass
(really, or in simulation), then reports the step done (`finish_step`). The scheduling follows
vLLM V1's `Scheduler.schedule`:

1. Running requests first, in arrival order: a decoding request needs one token (1 + k with k
   speculative tokens), a request still in prefill needs the rest of its prompt, each cut to the
   remaining token budget (`max_num_batched_tokens`). When the KV cache cannot give a request its
   blocks, the newest running request is preempted (its blocks freed, its progress dropped, back
   to the front of the waiting queue; it is recomputed later), until the request fits or is
   itself the one preempted.
2. Then, only if nothing was preempted, waiting requests in order while fewer than
   `max_num_seqs` run and budget remains: the longest cached prefix is reused, the rest is
   prefilled (one chunk within the budget under chunked prefill; the whole prompt or nothing
   without it). The first request that does not fit stops admission.

A step computes every scheduled token; a request whose prompt is complete samples one token (or
1 + accepted drafts). The step's duration comes from `StepCostModel`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from thrifty.twin.config import EngineConfig
from thrifty.twin.kv_cache import BlockPool, PlainBlockPool
from thrifty.twin.sizing import ServerSizing, size_server
from thrifty.twin.step_cost import StepCostModel, step_cost_model


class RequestRejectedError(ValueError):
    """A request the server refuses outright (vLLM answers it with HTTP 400)."""


class RequestStatus(Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(frozen=True, slots=True)
class EngineRequest:
    """A request as the engine sees it: token counts and prefix identity, no text."""

    request_id: str
    """Unique among the engine's live requests."""
    prompt_tokens: int
    """Tokens of the prompt."""
    max_output_tokens: int
    """Tokens the request generates before it finishes."""
    block_hashes: tuple[int, ...] = ()
    """Hashes of the prompt's full KV blocks (see `block_hashes`); empty: shares no prefix."""
    stops_naturally: bool = False
    """Finish with reason `stop` (end of sequence) rather than `length` (max_tokens reached)."""


class RequestState:
    """A request's progress inside the engine. Drivers read it; only the engine writes it."""

    __slots__ = (
        "arrival_s",
        "blocks",
        "cached_tokens",
        "finish_reason",
        "finished_s",
        "first_scheduled_s",
        "first_token_s",
        "last_token_s",
        "max_output_tokens",
        "num_computed",
        "num_preemptions",
        "num_registered",
        "output_tokens",
        "prompt_hashes",
        "prompt_tokens",
        "request_id",
        "spec_credit",
        "status",
        "stops_naturally",
        "unique_seed",
    )

    def __init__(self, request: EngineRequest, arrival_s: float, unique_seed: int) -> None:
        self.request_id = request.request_id
        self.prompt_tokens = request.prompt_tokens
        self.max_output_tokens = request.max_output_tokens
        self.prompt_hashes = request.block_hashes
        self.stops_naturally = request.stops_naturally
        self.unique_seed = unique_seed
        self.arrival_s = arrival_s
        self.status = RequestStatus.WAITING
        self.output_tokens = 0
        self.num_computed = 0
        self.num_registered = 0
        self.blocks: list[int] = []
        self.first_scheduled_s: float | None = None
        self.first_token_s: float | None = None
        self.last_token_s: float | None = None
        self.finished_s: float | None = None
        self.finish_reason: str | None = None
        self.cached_tokens = 0
        self.num_preemptions = 0
        self.spec_credit = 0.0

    @property
    def num_tokens(self) -> int:
        """Prompt plus the tokens generated so far: what a recompute after preemption prefills."""
        return self.prompt_tokens + self.output_tokens

    def block_hash(self, index: int) -> int:
        """Hash of the request's block `index`: the prompt's shared hash, else one unique to it."""
        if index < len(self.prompt_hashes):
            return self.prompt_hashes[index]
        return hash((self.unique_seed, index))


@dataclass(slots=True)
class StepPlan:
    """What one step computes, decided at its start."""

    start_s: float
    duration_s: float
    scheduled: list[tuple[RequestState, int]]
    """(request, tokens computed for it this step), in scheduling order."""
    num_tokens: int
    num_preempted: int
    prefix_queries: int
    """Tokens of newly admitted requests looked up in the prefix cache."""
    prefix_hits: int
    """Of those, tokens found cached."""


@dataclass(slots=True)
class StepOutcome:
    """What a finished step (or a run of identical decode steps) produced."""

    start_s: float
    end_s: float
    emitted: list[tuple[RequestState, int, float | None]] = field(default_factory=list)
    """(request, new tokens, seconds since its previous token or None for its first token)."""
    finished: list[RequestState] = field(default_factory=list)
    num_prompt_tokens: int = 0
    """Prompt tokens of requests that produced their first token (vLLM's `prompt_tokens`)."""
    num_generation_tokens: int = 0
    num_scheduled_tokens: int = 0
    num_preempted: int = 0
    prefix_queries: int = 0
    prefix_hits: int = 0
    num_steps: int = 1
    repeated_gaps: list[tuple[float, int]] = field(default_factory=list)
    """Decode runs only: (inter-token gap, how many tokens had it), for the steps after the first."""


class Engine:
    """One server's scheduler, KV cache and step clock arithmetic."""

    def __init__(
        self, config: EngineConfig, *, sizing: ServerSizing | None = None, step_time_scale: float = 1.0
    ) -> None:
        """`step_time_scale`: every step takes this many times the calibrated time (a real engine
        that runs slower or faster than the calibration)."""
        self.config = config
        self.sizing = sizing if sizing is not None else size_server(config)
        self.cost: StepCostModel = step_cost_model(config, step_time_scale)
        blocks = self.sizing.num_gpu_blocks
        self.pool = BlockPool(blocks) if config.enable_prefix_caching else PlainBlockPool(blocks)
        self._running: list[RequestState] = []
        self._waiting: deque[RequestState] = deque()
        self._by_id: dict[str, RequestState] = {}
        self._next_seed = 0
        self._block_size = config.block_size
        spec = config.speculative
        self._spec_tokens = spec.num_speculative_tokens if spec is not None else 0
        self._spec_mean_accepted = spec.mean_accepted_tokens if spec is not None else 0.0
        self.preemptions_total = 0
        self.prefix_queries_total = 0
        self.prefix_hits_total = 0

    # ---- read-only views, for drivers and dispatch policies ----

    @property
    def num_running(self) -> int:
        return len(self._running)

    @property
    def num_waiting(self) -> int:
        return len(self._waiting)

    @property
    def kv_usage(self) -> float:
        """Share of KV blocks referenced by requests, 0..1 (vLLM's `kv_cache_usage_perc`)."""
        return self.pool.usage

    @property
    def has_work(self) -> bool:
        return bool(self._running or self._waiting)

    @property
    def running(self) -> tuple[RequestState, ...]:
        return tuple(self._running)

    def cached_prefix_tokens(self, block_hashes: tuple[int, ...]) -> int:
        """Tokens of a prompt with these block hashes that this engine's cache holds now."""
        if not self.config.enable_prefix_caching:
            return 0
        return len(self.pool.longest_cached_prefix(block_hashes, len(block_hashes))) * self._block_size

    # ---- requests ----

    def add_request(self, request: EngineRequest, now: float) -> RequestState:
        """Queue a request that arrived at `now`; `RequestRejectedError` if vLLM would refuse it."""
        total = request.prompt_tokens + request.max_output_tokens
        if request.prompt_tokens < 1 or request.max_output_tokens < 1:
            raise RequestRejectedError(
                f"request {request.request_id}: needs at least one prompt token and one output token"
            )
        if total > self.config.max_model_len:
            raise RequestRejectedError(
                f"This model's maximum context length is {self.config.max_model_len} tokens. However, you "
                f"requested {total} tokens ({request.prompt_tokens} in the messages, "
                f"{request.max_output_tokens} in the completion). Please reduce the length of the "
                "messages or completion."
            )
        if request.request_id in self._by_id:
            raise RequestRejectedError(f"request {request.request_id}: already in the engine")
        state = RequestState(request, now, unique_seed=self._next_seed)
        self._next_seed += 1
        self._waiting.append(state)
        self._by_id[state.request_id] = state
        return state

    def abort(self, request_id: str, now: float) -> RequestState | None:
        """Drop a request (its client went away), freeing its blocks. None if it is not live."""
        state = self._by_id.pop(request_id, None)
        if state is None:
            return None
        if state.status is RequestStatus.WAITING:
            self._waiting.remove(state)
        else:
            self._running.remove(state)
            self.pool.release(state.blocks)
            state.blocks = []
        state.status = RequestStatus.FINISHED
        state.finish_reason = "abort"
        state.finished_s = now
        return state

    # ---- steps ----

    def plan_step(self, now: float) -> StepPlan | None:
        """Schedule the step that starts at `now` (allocating its KV blocks); None if there is none."""
        config = self.config
        pool = self.pool
        block_size = self._block_size
        spec_tokens = self._spec_tokens
        budget = config.max_num_batched_tokens
        running = self._running
        scheduled: list[tuple[RequestState, int]] = []
        tokens = sampled = context = pairs = decoding = 0
        preempted = 0

        index = 0
        while index < len(running) and budget > 0:
            request = running[index]
            computed = request.num_computed
            remaining = request.num_tokens - computed
            is_decode = remaining == 1
            count = remaining + spec_tokens if is_decode else remaining
            if count > budget:
                count = budget
            needed = -(-(computed + count) // block_size) - len(request.blocks)
            while needed > pool.num_free:
                victim = running.pop()
                self._preempt(victim)
                preempted += 1
                if victim is request:
                    break
            if request.status is not RequestStatus.RUNNING:
                break
            if needed > 0:
                pool.allocate(needed, request.blocks)
            scheduled.append((request, count))
            budget -= count
            tokens += count
            context += computed + count
            pairs += count * computed + count * (count + 1) // 2
            if computed + count >= request.num_tokens:
                sampled += count if is_decode else 1
            decoding += is_decode
            index += 1

        queries = hits = 0
        if not preempted:
            waiting = self._waiting
            while waiting and budget > 0 and len(running) < config.max_num_seqs:
                request = waiting[0]
                cached: list[int] = []
                if config.enable_prefix_caching:
                    # vLLM always recomputes at least the last prompt token, to sample from it.
                    lookable = (request.num_tokens - 1) // block_size
                    cached = pool.longest_cached_prefix(self._lookup_hashes(request, lookable), lookable)
                computed = len(cached) * block_size
                count = request.num_tokens - computed
                if not config.enable_chunked_prefill and count > budget:
                    break
                if count > budget:
                    count = budget
                needed = -(-(computed + count) // block_size) - len(cached)
                if not pool.can_allocate(cached, needed):
                    break
                waiting.popleft()
                pool.take_cached(cached, request.blocks)
                pool.allocate(needed, request.blocks)
                request.num_computed = computed
                request.num_registered = len(cached)
                request.status = RequestStatus.RUNNING
                if request.first_scheduled_s is None:
                    request.first_scheduled_s = now
                    request.cached_tokens = computed
                if config.enable_prefix_caching:
                    queries += request.num_tokens
                    hits += computed
                running.append(request)
                scheduled.append((request, count))
                budget -= count
                tokens += count
                context += computed + count
                pairs += count * computed + count * (count + 1) // 2
                if computed + count >= request.num_tokens:
                    sampled += 1

        self.prefix_queries_total += queries
        self.prefix_hits_total += hits
        if not scheduled:
            return None
        duration = self.cost.step_seconds(
            tokens=tokens, sampled=sampled, context_tokens=context, attention_pairs=pairs, decoding=decoding
        )
        return StepPlan(now, duration, scheduled, tokens, preempted, queries, hits)

    def finish_step(self, plan: StepPlan, end_s: float) -> StepOutcome:
        """Apply a planned step that ended at `end_s`: progress, sampled tokens, finished requests."""
        outcome = StepOutcome(
            start_s=plan.start_s,
            end_s=end_s,
            num_scheduled_tokens=plan.num_tokens,
            num_preempted=plan.num_preempted,
            prefix_queries=plan.prefix_queries,
            prefix_hits=plan.prefix_hits,
        )
        caching = self.config.enable_prefix_caching
        block_size = self._block_size
        emitted = outcome.emitted
        any_finished = False
        for request, count in plan.scheduled:
            if request.status is not RequestStatus.RUNNING:
                continue
            num_tokens = request.num_tokens
            reached = request.num_computed + count
            if reached < num_tokens:
                request.num_computed = reached
            else:
                new = 1
                drafts = reached - num_tokens
                if drafts > 0:
                    request.spec_credit += self._spec_mean_accepted
                    accepted = min(int(request.spec_credit), drafts)
                    request.spec_credit -= int(request.spec_credit)
                    new += accepted
                left = request.max_output_tokens - request.output_tokens
                if new > left:
                    new = left
                request.num_computed = num_tokens - 1 + new
                if request.first_token_s is None:
                    request.first_token_s = end_s
                    outcome.num_prompt_tokens += request.prompt_tokens
                    emitted.append((request, new, None))
                else:
                    assert request.last_token_s is not None
                    emitted.append((request, new, end_s - request.last_token_s))
                request.last_token_s = end_s
                request.output_tokens += new
                outcome.num_generation_tokens += new
            # Register before a finished request frees its blocks, so a follow-up can reuse them.
            if caching:
                self._register_full_blocks(request, block_size)
            if request.output_tokens >= request.max_output_tokens:
                self._finish(request, end_s)
                outcome.finished.append(request)
                any_finished = True
        if any_finished:
            self._running = [request for request in self._running if request.status is RequestStatus.RUNNING]
        return outcome

    def decode_run(self, now: float, deadline: float) -> StepOutcome | None:
        """Advance several pure-decode steps at once, when nothing can change between them.

        Applies while every running request decodes, no waiting request can be admitted (none
        waits, or the batch is full), there is no speculative decoding, and the KV cache has the
        blocks for every step. It stops at the first request that finishes, at the first step
        starting at or after `deadline`, and before the cache runs out. Equivalent to calling
        `plan_step`/`finish_step` that many times; None when it does not apply (use those instead).
        """
        running = self._running
        if self._spec_tokens or not running or now >= deadline:
            return None
        if self._waiting and len(running) < self.config.max_num_seqs:
            return None
        steps_left = min(request.max_output_tokens - request.output_tokens for request in running)
        if steps_left < 2:
            return None
        for request in running:
            # A request whose chunked prefill stopped one token short also has one token left to
            # compute, but it has not produced a token yet: only true decodes fit a run.
            if request.num_tokens - request.num_computed != 1 or request.last_token_s is None:
                return None
        steps = self._steps_the_cache_allows(steps_left)
        if steps < 2:
            return None

        batch = len(running)
        context = sum(request.num_computed for request in running) + batch
        step_seconds = self.cost.step_seconds
        durations: list[float] = []
        clock = now
        while len(durations) < steps and clock < deadline:
            duration = step_seconds(
                tokens=batch, sampled=batch, context_tokens=context, attention_pairs=context, decoding=batch
            )
            durations.append(duration)
            clock += duration
            context += batch
        done = len(durations)

        outcome = StepOutcome(
            start_s=now,
            end_s=clock,
            num_generation_tokens=batch * done,
            num_scheduled_tokens=batch * done,
            num_steps=done,
        )
        first_end = now + durations[0]
        outcome.repeated_gaps = [(duration, batch) for duration in durations[1:]]
        caching = self.config.enable_prefix_caching
        block_size = self._block_size
        pool = self.pool
        any_finished = False
        for request in running:
            assert request.last_token_s is not None
            outcome.emitted.append((request, done, first_end - request.last_token_s))
            request.num_computed += done
            request.output_tokens += done
            request.last_token_s = clock
            needed = -(-request.num_computed // block_size) - len(request.blocks)
            if needed > 0:
                pool.allocate(needed, request.blocks)
            if caching:
                self._register_full_blocks(request, block_size)
            if request.output_tokens >= request.max_output_tokens:
                self._finish(request, clock)
                outcome.finished.append(request)
                any_finished = True
        if any_finished:
            self._running = [request for request in running if request.status is RequestStatus.RUNNING]
        return outcome

    # ---- internals ----

    def _steps_the_cache_allows(self, limit: int) -> int:
        """The most decode steps (up to `limit`) whose new blocks the free queue can supply."""
        running = self._running
        block_size = self._block_size
        free = self.pool.num_free

        def blocks_for(steps: int) -> int:
            total = 0
            for request in running:
                needed = -(-(request.num_computed + steps) // block_size) - len(request.blocks)
                if needed > 0:
                    total += needed
            return total

        if blocks_for(limit) <= free:
            return limit
        low, high = 0, limit  # blocks_for(low) fits, blocks_for(high) does not
        while high - low > 1:
            middle = (low + high) // 2
            if blocks_for(middle) <= free:
                low = middle
            else:
                high = middle
        return low

    def _lookup_hashes(self, request: RequestState, count: int) -> tuple[int, ...] | list[int]:
        # Blocks past the shared prompt hashes are unique to the request: only a request that was
        # preempted (and so computed them before) can find them cached.
        shared = request.prompt_hashes
        if request.num_preemptions == 0 or count <= len(shared):
            return shared
        return [request.block_hash(index) for index in range(count)]

    def _register_full_blocks(self, request: RequestState, block_size: int) -> None:
        full = request.num_computed // block_size
        if full > request.num_registered:
            blocks = request.blocks
            register = self.pool.register
            for index in range(request.num_registered, full):
                register(blocks[index], request.block_hash(index))
            request.num_registered = full

    def _preempt(self, request: RequestState) -> None:
        self.pool.release(request.blocks)
        request.blocks = []
        request.num_computed = 0
        request.num_registered = 0
        request.num_preemptions += 1
        request.status = RequestStatus.WAITING
        self._waiting.appendleft(request)
        self.preemptions_total += 1

    def _finish(self, request: RequestState, now: float) -> None:
        request.status = RequestStatus.FINISHED
        request.finished_s = now
        request.finish_reason = "stop" if request.stops_naturally else "length"
        self.pool.release(request.blocks)
        request.blocks = []
        del self._by_id[request.request_id]
