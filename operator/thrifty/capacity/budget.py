"""The engine's token budget (`--max-num-batched-tokens`) that gives one replica the highest
capacity at the SLO.

A step computes every running request's next token plus a chunk of waiting prompts, up to the
budget. A large budget prefills a prompt in few steps (short TTFT), but every step that carries a
chunk is an inter-token gap for all the requests decoding beside it: once such steps outlast the
ITL objective, more than 5% of the gaps breach it at a lower rate. A small budget keeps every step
short but spends more steps, and more fixed cost per step, on each prompt. Where the balance lies
depends on the request mix, the GPU and the objectives, so the budget is chosen by asking the
capacity model at each candidate, not by a rule.

    choice = best_token_budget(config, mix, LatencySlo(ttft_p95_s=2.0, itl_p95_s=0.05))
    choice.tokens, choice.gain
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from thrifty.capacity.mix import RequestMix
from thrifty.capacity.model import LatencySlo, ReplicaCapacity, ReplicaModel
from thrifty.twin.config import EngineConfig, TwinConfigError

TOKEN_BUDGETS = (512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384)
"""Budgets tried: steps of about 1.5x, so that the best one lies within 25% of the true optimum.
Multiples of 256, as vLLM's own defaults (2048, 8192, 16384) are."""

CapacityOf = Callable[[EngineConfig], ReplicaCapacity]


@dataclass(frozen=True, slots=True)
class BudgetChoice:
    """The best budget for a mix, and what the configuration as it runs sustains."""

    tokens: int
    capacity: ReplicaCapacity
    """One replica's capacity at the SLO with `tokens`."""
    current_tokens: int
    current: ReplicaCapacity

    @property
    def gain(self) -> float:
        """Capacity with `tokens` over capacity as it runs, less one (0.25: a quarter more)."""
        if self.current.rate_per_s <= 0:
            return math.inf if self.capacity.rate_per_s > 0 else 0.0
        return self.capacity.rate_per_s / self.current.rate_per_s - 1


def token_budgets(config: EngineConfig, candidates: Iterable[int] = TOKEN_BUDGETS) -> tuple[int, ...]:
    """The candidates vLLM accepts for `config`: at least `max_num_seqs` (every running request
    needs a token slot per step) and, without chunked prefill, at least `max_model_len` (a whole
    prompt goes in one step). The budget the configuration runs is always among them."""
    floor = (
        config.max_num_seqs
        if config.enable_chunked_prefill
        else max(config.max_num_seqs, config.max_model_len)
    )
    valid = {tokens for tokens in candidates if tokens >= floor}
    valid.add(config.max_num_batched_tokens)
    return tuple(sorted(valid))


def best_token_budget(
    config: EngineConfig,
    mix: RequestMix,
    slo: LatencySlo,
    *,
    step_time_scale: float = 1.0,
    candidates: Iterable[int] = TOKEN_BUDGETS,
    capacity_of: CapacityOf | None = None,
) -> BudgetChoice:
    """The budget among `candidates` with the highest capacity at `slo` for `mix`.

    A candidate wins only by more than 0.5% (below that the model cannot tell them apart), so
    the budget that runs stays when nothing is clearly better. A candidate whose activations do
    not leave the KV cache room (`TwinConfigError` from the sizing) is skipped. `capacity_of`
    replaces the model's own evaluation (a cache, in the control loop).
    """

    def evaluate(candidate: EngineConfig) -> ReplicaCapacity:
        if capacity_of is not None:
            return capacity_of(candidate)
        return ReplicaModel(candidate, step_time_scale=step_time_scale).capacity(mix, slo)

    current_tokens = config.max_num_batched_tokens
    current = evaluate(config)
    best_tokens, best = current_tokens, current
    for tokens in token_budgets(config, candidates):
        if tokens == current_tokens:
            continue
        try:
            capacity = evaluate(dataclasses.replace(config, max_num_batched_tokens=tokens))
        except TwinConfigError:
            continue
        if capacity.rate_per_s > best.rate_per_s * 1.005:
            best_tokens, best = tokens, capacity
    return BudgetChoice(best_tokens, best, current_tokens, current)
