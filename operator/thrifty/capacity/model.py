"""What one replica sustains at its latency SLO, from the twin's step-cost calibration.

No simulation: a mean-field model of vLLM V1's continuous batching, solved by a short fixed
point per arrival rate and a bisection over rates. At a Poisson arrival rate `rate`:

- `n` requests run at once (Little's law: rate x the time a request spends in the engine), and
  the number running at a moment is Poisson around `n` (an M/G/infinity occupancy), which is
  what `max_num_seqs` and the KV cache must hold at its 95th percentile;
- every step carries each running request's decode token; a plain decode step takes
  `t(n, 0)` from the roofline (the twin's `StepCostModel`, one source of truth for GPU speed);
- prompts arriving during a step are prefilled together in the next ones (Poisson, on average
  `rate x mean step` of them), cut into chunks of the token budget left after the decodes
  (`max_num_batched_tokens - n`); a step with a chunk of `c` tokens takes `t(n, c)`;
- the steps per second follow from the time balance (prefill steps and decode steps fill each
  second), and the mean inter-token gap is one step;
- an inter-token gap exceeds the ITL SLO exactly when its step does, so the ITL p95 holds while
  at most 5% of steps (every step carries the same decodes) are longer than the SLO;
- TTFT is the rest of the step in flight when the request arrives, plus its batch's prefill
  steps, plus a wait behind prompts that fill whole budgets (M/G/1, exponential tail).

The capacity is the highest rate at which the SLOs hold, `max_num_seqs` and the KV cache hold
the 95th-percentile occupancy, and prefill keeps up. `step_time_scale` multiplies every step
(1.3: the real engine runs 30% slower than the calibration); the live loop fits it online.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from thrifty.capacity.mix import RequestMix
from thrifty.twin.config import EngineConfig
from thrifty.twin.sizing import ServerSizing, size_server
from thrifty.twin.step_cost import StepCostModel, step_cost_model

ITL_SLOW_BUDGET = 0.05
"""A p95 objective allows 5% of inter-token gaps above it."""
_OCCUPANCY_Z = 1.645
"""The 95th percentile of a Poisson occupancy sits about 1.645 standard deviations above its mean."""
_TTFT_TAIL = 0.05
_FIXED_POINT_ROUNDS = 24
_BISECTION_ROUNDS = 16
_PAIR_POINTS = 8
"""Prompts that arrive together are merged over this coarser grid of the prompt distribution."""


@dataclass(frozen=True, slots=True)
class LatencySlo:
    """The model's objectives (spec.scaling.slo); None: no objective on that latency."""

    ttft_p95_s: float | None = None
    itl_p95_s: float | None = None


@dataclass(frozen=True, slots=True)
class LoadPrediction:
    """One replica at one Poisson arrival rate, as the model predicts it."""

    rate_per_s: float
    concurrency: float
    """Mean requests running in the engine."""
    mean_itl_s: float
    """Mean inter-token gap (one step): what `vllm:inter_token_latency_seconds` sum/count shows."""
    decode_step_s: float
    """A step that carries only decodes."""
    slow_share: float
    """Share of inter-token gaps longer than the ITL SLO (0 without one)."""
    ttft_p95_s: float
    seat_wait_p95_s: float
    """Of the TTFT p95, the wait for one of `max_num_seqs` places in the running batch (an
    M/G/c queue: Erlang C with an exponential tail)."""
    kv_usage: float
    """KV-cache share the 95th-percentile occupancy fills."""
    prefill_busy: float
    """Share of time spent in steps that carry prefill chunks."""
    overflow: str
    """What the engine cannot keep up with at this rate, in words; empty when it keeps up."""


@dataclass(frozen=True, slots=True)
class ReplicaCapacity:
    """The highest arrival rate one replica sustains within the SLO, and what binds there."""

    rate_per_s: float
    concurrency: float
    """Mean running requests at that rate: a cap below it would throttle the replica."""
    binding: str
    """What stops a higher rate: `ITL p95`, `TTFT p95`, `KV cache`, `max_num_seqs` or `prefill`."""
    at_capacity: LoadPrediction


@dataclass(frozen=True, slots=True)
class _Batch:
    """Prompts prefilled together, as the weights of a discrete distribution."""

    probability: float
    uncached: tuple[float, ...]
    cached: tuple[float, ...]


class ReplicaModel:
    """The capacity model of one server configuration (one GPU product, model, flags).

    model = ReplicaModel(config)
    model.capacity(mix, LatencySlo(ttft_p95_s=2.0, itl_p95_s=0.05)).rate_per_s
    model.predict(mix, rate=10.0, itl_slo_s=0.05).mean_itl_s
    """

    def __init__(self, config: EngineConfig, *, step_time_scale: float = 1.0) -> None:
        self.config = config
        self.step_time_scale = step_time_scale
        self._cost: StepCostModel = step_cost_model(config, step_time_scale)
        self._sizing: ServerSizing = size_server(config)
        spec = config.speculative
        self._draft_tokens = spec.num_speculative_tokens if spec is not None else 0
        self._tokens_per_step = 1.0 + (spec.mean_accepted_tokens if spec is not None else 0.0)

    def rescaled(self, step_time_scale: float) -> ReplicaModel:
        """The same configuration on an engine `step_time_scale` times as slow as calibrated."""
        return ReplicaModel(self.config, step_time_scale=step_time_scale)

    @property
    def kv_capacity_tokens(self) -> int:
        return self._sizing.kv_capacity_tokens

    # ---- one step ----

    def _step(
        self, decoding: float, context: float, chunk: float, chunk_context: float, pairs: float
    ) -> float:
        """Seconds of a step with `decoding` decodes at `context` tokens each, plus a prefill chunk."""
        per = 1 + self._draft_tokens
        return self._cost.step_seconds(
            tokens=round(decoding * per + chunk),
            sampled=round(decoding * per + (1 if chunk else 0)),
            context_tokens=round(decoding * (context + per) + chunk_context),
            attention_pairs=round(decoding * (per * context + per * (per + 1) / 2) + pairs),
            decoding=1 if decoding >= 0.5 else 0,
        )

    def _batch_steps(
        self, batch: _Batch, decoding: float, context: float, free: float, itl_slo_s: float | None
    ) -> tuple[float, int, int, list[float]]:
        """(seconds, steps, steps over the ITL SLO, each prompt's time to its last chunk's end)."""
        total = sum(batch.uncached)
        chunks = max(1, math.ceil(total / free - 1e-9))
        cached = sum(batch.cached)
        if len(batch.uncached) > 1:
            return self._merged_batch_steps(batch, total, cached, chunks, free, decoding, context, itl_slo_s)
        # One prompt: each chunk attends to the cached prefix and to every chunk before it.
        seconds = 0.0
        slow = 0
        done = 0.0
        for _ in range(chunks):
            size = min(free, total - done)
            before = cached + done
            duration = self._step(
                decoding, context, size, before + size, size * before + size * (size + 1) / 2
            )
            seconds += duration
            done += size
            if itl_slo_s is not None and duration > itl_slo_s:
                slow += 1
        return seconds, chunks, slow, [seconds]

    def _merged_batch_steps(
        self,
        batch: _Batch,
        total: float,
        cached: float,
        chunks: int,
        free: float,
        decoding: float,
        context: float,
        itl_slo_s: float | None,
    ) -> tuple[float, int, int, list[float]]:
        """`_batch_steps` of several prompts prefilled together: their attention and context are
        spread over the chunks in proportion to size, so every chunk but the last is the same step."""
        pairs_total = sum(u * (u + 1) / 2 + u * c for u, c in zip(batch.uncached, batch.cached, strict=True))

        def step(size: float) -> float:
            return self._step(
                decoding, context, size, (cached + total) * size / total, pairs_total * size / total
            )

        full = step(free) if chunks > 1 else 0.0
        last = step(total - free * (chunks - 1))
        seconds = full * (chunks - 1) + last
        slow = 0
        if itl_slo_s is not None:
            slow = (chunks - 1 if full > itl_slo_s else 0) + (1 if last > itl_slo_s else 0)
        ends = []
        boundary = 0.0
        for uncached in batch.uncached:
            boundary += uncached
            # The chunk that carries a prompt's last token ends its prefill.
            index = min(chunks, max(1, math.ceil(boundary / free - 1e-9)))
            ends.append(seconds if index == chunks else full * index)
        return seconds, chunks, slow, ends

    # ---- one rate ----

    def _batches(self, mix: RequestMix, arrivals_per_step: float) -> list[_Batch]:
        """The distribution of what one step's prefill batch holds, given that it holds something."""
        hit = mix.prefix_hit_rate
        prompts = mix.prompt_tokens
        uncached = [max(1.0, p * (1 - hit)) for p in prompts]
        cached = [p - u for p, u in zip(prompts, uncached, strict=True)]
        mu = arrivals_per_step
        at_least_one = -math.expm1(-mu)
        one = mu * math.exp(-mu) / at_least_one if at_least_one > 0 else 1.0
        more = max(0.0, 1.0 - one)
        batches = [_Batch(one / len(prompts), (u,), (c,)) for u, c in zip(uncached, cached, strict=True)]
        if more > 1e-6:
            # Two or more prompts at once (mostly two): merged over a coarser grid; beyond two, the
            # extra prompts count at the mean size.
            extra = (mu - mu * math.exp(-mu) - 2 * (mu * mu / 2 * math.exp(-mu))) / at_least_one
            beyond_two = max(0.0, extra / more) if more > 0 else 0.0
            mean_u = sum(uncached) / len(uncached)
            mean_c = sum(cached) / len(cached)
            stride = max(1, len(prompts) // _PAIR_POINTS)
            coarse = list(range(stride // 2, len(prompts), stride))
            weight = more / (len(coarse) * len(coarse))
            tail_u = (mean_u,) if beyond_two > 0.5 else ()
            tail_c = (mean_c,) if beyond_two > 0.5 else ()
            for i in coarse:
                for j in coarse:
                    batches.append(
                        _Batch(weight, (uncached[i], uncached[j], *tail_u), (cached[i], cached[j], *tail_c))
                    )
        return batches

    def predict(
        self,
        mix: RequestMix,
        rate: float,
        *,
        itl_slo_s: float | None = None,
        near: LoadPrediction | None = None,
    ) -> LoadPrediction:
        """One replica under Poisson arrivals at `rate` requests per second of `mix`; `near`, a
        prediction at a nearby rate, starts the fixed point close to where it settles."""
        config = self.config
        budget = config.max_num_batched_tokens
        per_request_gaps = sum(max(0.0, o - 1) for o in mix.output_tokens) / len(mix.output_tokens)
        per_request_gaps /= self._tokens_per_step
        context = mix.decode_context
        decode = self._step(1, context, 0, 0, 0)
        steps_per_s = 1 / decode
        concurrency = rate * (per_request_gaps + 1) * decode
        if near is not None and not near.overflow and near.rate_per_s > 0:
            steps_per_s = 1 / near.mean_itl_s
            concurrency = near.concurrency * rate / near.rate_per_s
        ttft_mean = decode
        stats = _RateStats(busy=0.0)
        for _ in range(_FIXED_POINT_ROUNDS):
            # A step that runs carries at least one request.
            decoding = max(1.0, min(concurrency, float(config.max_num_seqs)))
            free = budget - decoding * (1 + self._draft_tokens)
            if free < 1:
                return self._overflowing(rate, concurrency, decode, "the token budget (decodes fill it)")
            decode = self._step(decoding, context, 0, 0, 0)
            stats = self._rate_stats(mix, rate, steps_per_s, decoding, context, free, decode, itl_slo_s)
            if stats.busy >= 1:
                return self._overflowing(rate, concurrency, decode, "prefill (it fills every step)")
            new_steps = stats.steps_per_s
            ttft_mean = stats.ttft_mean
            new_concurrency = rate * (ttft_mean + per_request_gaps / new_steps)
            settled = abs(new_steps - steps_per_s) < 1e-4 * steps_per_s and abs(
                new_concurrency - concurrency
            ) < 1e-3 * max(1.0, concurrency)
            steps_per_s = 0.5 * (steps_per_s + new_steps)
            concurrency = 0.5 * (concurrency + new_concurrency)
            if settled:
                break
        occupancy = concurrency + _OCCUPANCY_Z * math.sqrt(concurrency)
        kv_usage = occupancy * (context + config.block_size / 2) / self.kv_capacity_tokens
        overflow = ""
        seq_wait = _seat_wait_p95(config.max_num_seqs, concurrency, concurrency / rate if rate > 0 else 0.0)
        if not math.isfinite(seq_wait):
            overflow = f"max_num_seqs {config.max_num_seqs} (mean occupancy {concurrency:.0f})"
        elif kv_usage > 1:
            overflow = f"the KV cache (95th-percentile occupancy would use {kv_usage:.2f} of it)"
        return LoadPrediction(
            rate_per_s=rate,
            concurrency=concurrency,
            mean_itl_s=1 / steps_per_s,
            decode_step_s=decode,
            slow_share=stats.slow_share,
            ttft_p95_s=stats.ttft_p95 + seq_wait,
            seat_wait_p95_s=seq_wait,
            kv_usage=kv_usage,
            prefill_busy=stats.busy,
            overflow=overflow,
        )

    def _overflowing(self, rate: float, concurrency: float, decode: float, what: str) -> LoadPrediction:
        return LoadPrediction(rate, concurrency, decode, decode, 1.0, math.inf, math.inf, 1.0, 1.0, what)

    def _rate_stats(
        self,
        mix: RequestMix,
        rate: float,
        steps_per_s: float,
        decoding: float,
        context: float,
        free: float,
        decode: float,
        itl_slo_s: float | None,
    ) -> _RateStats:
        arrivals_per_step = rate / steps_per_s
        batches_per_s = steps_per_s * -math.expm1(-arrivals_per_step)
        seconds = steps = slow = full_seconds = full_square = batch_square = 0.0
        first_token: list[tuple[float, float]] = []
        for batch in self._batches(mix, arrivals_per_step):
            batch_s, batch_steps, batch_slow, ends = self._batch_steps(
                batch, decoding, context, free, itl_slo_s
            )
            seconds += batch.probability * batch_s
            steps += batch.probability * batch_steps
            slow += batch.probability * batch_slow
            whole = (batch_steps - 1) * batch_s / batch_steps if batch_steps > 1 else 0.0
            full_seconds += batch.probability * whole
            full_square += batch.probability * whole * whole
            batch_square += batch.probability * batch_s * batch_s / batch_steps
            for end in ends:
                first_token.append((end, batch.probability))
        busy = batches_per_s * seconds
        if busy >= 1:
            return _RateStats(busy=busy)
        decode_steps = (1 - busy) / decode
        total_steps = batches_per_s * steps + decode_steps
        slow_steps = batches_per_s * slow + (
            decode_steps if itl_slo_s is not None and decode > itl_slo_s else 0
        )
        # The step in flight when a request arrives: its remaining time is length-biased.
        square = batches_per_s * batch_square + decode_steps * decode * decode
        residual = square / 2
        # Prompts that fill whole budgets delay the next batch: an M/G/1 wait with an exponential tail.
        full_busy = batches_per_s * full_seconds
        wait_mean = batches_per_s * full_square / (2 * (1 - full_busy)) if full_busy < 1 else math.inf
        wait_p95 = 0.0
        if full_busy > _TTFT_TAIL and math.isfinite(wait_mean):
            wait_p95 = wait_mean / full_busy * math.log(full_busy / _TTFT_TAIL)
        ttft_mean = residual + _weighted_mean(first_token) + wait_mean
        ttft_p95 = residual + _weighted_quantile(first_token, 0.95) + wait_p95
        return _RateStats(
            busy=busy,
            steps_per_s=total_steps,
            slow_share=slow_steps / total_steps,
            ttft_mean=ttft_mean,
            ttft_p95=ttft_p95,
        )

    # ---- the capacity ----

    def capacity(self, mix: RequestMix, slo: LatencySlo) -> ReplicaCapacity:
        """The highest Poisson rate of `mix` one replica serves within `slo`."""
        low_rate = 0.0
        low: LoadPrediction | None = None
        high_rate = self._prefill_bound(mix)
        binding = "prefill"
        for _ in range(_BISECTION_ROUNDS):
            middle = (low_rate + high_rate) / 2
            prediction = self.predict(mix, middle, itl_slo_s=slo.itl_p95_s, near=low)
            why = _breach(prediction, slo)
            if why:
                high_rate, binding = middle, why
            else:
                low_rate, low = middle, prediction
        if low is None:
            low = self.predict(mix, low_rate, itl_slo_s=slo.itl_p95_s)
        return ReplicaCapacity(low_rate, low.concurrency, binding, low)

    def _prefill_bound(self, mix: RequestMix) -> float:
        """A rate no replica can exceed: every step full of prefill, no decode at all."""
        full = self._step(0, 0, self.config.max_num_batched_tokens, mix.mean_prompt, 0)
        uncached = max(1.0, mix.mean_prompt * (1 - mix.prefix_hit_rate))
        return self.config.max_num_batched_tokens / full / uncached * 2


@dataclass(frozen=True, slots=True)
class _RateStats:
    busy: float
    steps_per_s: float = 0.0
    slow_share: float = 1.0
    ttft_mean: float = math.inf
    ttft_p95: float = math.inf


def _breach(prediction: LoadPrediction, slo: LatencySlo) -> str:
    """What the prediction violates, by the name `ReplicaCapacity.binding` uses; empty when none."""
    if prediction.overflow.startswith("max_num_seqs"):
        return "max_num_seqs"
    if prediction.overflow.startswith("the KV cache"):
        return "KV cache"
    if prediction.overflow:
        return "prefill"
    if slo.itl_p95_s is not None and prediction.slow_share > ITL_SLOW_BUDGET:
        return "ITL p95"
    if slo.ttft_p95_s is not None and prediction.ttft_p95_s > slo.ttft_p95_s:
        return "max_num_seqs" if prediction.seat_wait_p95_s > prediction.ttft_p95_s / 2 else "TTFT p95"
    return ""


def _seat_wait_p95(seats: int, load: float, service_s: float) -> float:
    """95th-percentile wait for a place among `seats` with `load` erlangs offered (M/G/c): zero
    when fewer than 5% of arrivals wait, infinite when the load reaches the seats."""
    if load >= seats:
        return math.inf
    blocking = 1.0
    for servers in range(1, seats + 1):
        blocking = load * blocking / (servers + load * blocking)
    waiting = seats * blocking / (seats - load * (1 - blocking))
    if waiting <= _TTFT_TAIL:
        return 0.0
    return service_s / (seats - load) * math.log(waiting / _TTFT_TAIL)


def _weighted_mean(values: list[tuple[float, float]]) -> float:
    total = sum(weight for _, weight in values)
    return sum(value * weight for value, weight in values) / total if total else 0.0


def _weighted_quantile(values: list[tuple[float, float]], q: float) -> float:
    ordered = sorted(values)
    total = sum(weight for _, weight in ordered)
    running = 0.0
    for value, weight in ordered:
        running += weight
        if running >= q * total:
            return value
    return ordered[-1][0] if ordered else 0.0
