"""The token budget the capacity model picks: the candidate with the most capacity at the SLO."""

from __future__ import annotations

import dataclasses
import math
import random

from thrifty.capacity import (
    LatencySlo,
    ReplicaCapacity,
    ReplicaModel,
    RequestMix,
    best_token_budget,
    token_budgets,
)
from thrifty.capacity.budget import CapacityOf
from thrifty.twin import EngineConfig, TwinConfigError, engine_config_from_vllm_args

SLO = LatencySlo(ttft_p95_s=2.0, itl_p95_s=0.05)


def _config(**args: object) -> EngineConfig:
    base: dict[str, object] = {
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "max_model_len": 16384,
        "enable_prefix_caching": False,
    }
    return engine_config_from_vllm_args({**base, **args}, gpu_product="NVIDIA-H100-80GB-HBM3")


def _mix(prompt: float, output: float) -> RequestMix:
    rng = random.Random(f"{prompt}-{output}")
    prompts = [max(1.0, prompt * math.exp(rng.gauss(0, 0.6))) for _ in range(400)]
    outputs = [max(2.0, output * math.exp(rng.gauss(0, 0.5))) for _ in range(400)]
    return RequestMix.from_requests(prompts, outputs)


def test_candidates_respect_what_vllm_accepts_and_keep_the_running_budget() -> None:
    config = _config(max_num_seqs=1024, max_num_batched_tokens=5000)
    budgets = token_budgets(config)
    assert min(budgets) == 1024  # fewer tokens than sequences: vLLM refuses to start
    assert 5000 in budgets
    whole = _config(enable_chunked_prefill=False, max_model_len=8192, max_num_batched_tokens=8192)
    assert min(token_budgets(whole)) == 8192  # without chunks a whole prompt goes in one step


def test_long_prompts_under_a_tight_itl_objective_get_a_smaller_budget_than_vllms_h100_default() -> None:
    config = _config()
    assert config.max_num_batched_tokens == 8192  # vLLM's default on an 80 GB GPU
    mix = _mix(2500, 150)
    choice = best_token_budget(config, mix, SLO)
    # A full 8192-token chunk takes longer than 50 ms beside the decodes, so every long prompt
    # stretches everyone's gaps past the ITL objective; shorter chunks keep the steps inside it.
    assert choice.tokens < 8192
    assert choice.gain > 0.1
    assert choice.current.rate_per_s == ReplicaModel(config).capacity(mix, SLO).rate_per_s


def test_the_choice_is_the_best_candidate_and_never_worse_than_the_running_budget() -> None:
    config = _config(max_num_batched_tokens=2048)
    mix = _mix(400, 300)
    choice = best_token_budget(config, mix, SLO, candidates=(1024, 4096))
    rates = {
        tokens: ReplicaModel(dataclasses.replace(config, max_num_batched_tokens=tokens))
        .capacity(mix, SLO)
        .rate_per_s
        for tokens in (1024, 2048, 4096)
    }
    assert choice.capacity.rate_per_s >= max(rates.values()) / 1.005
    assert choice.capacity.rate_per_s >= choice.current.rate_per_s
    assert choice.current_tokens == 2048


def _fake(rates: dict[int, float]) -> CapacityOf:
    def capacity_of(config: EngineConfig) -> ReplicaCapacity:
        rate = rates[config.max_num_batched_tokens]
        if rate < 0:
            raise TwinConfigError("activations leave no room for the KV cache")
        prediction = ReplicaModel(config).predict(_mix(300, 100), 0.1)
        return ReplicaCapacity(rate, 1.0, "ITL p95", prediction)

    return capacity_of


def test_a_budget_only_marginally_better_does_not_replace_the_running_one() -> None:
    config = _config(max_num_batched_tokens=2048)
    rates = {1024: 10.04, 2048: 10.0, 4096: 9.0}
    choice = best_token_budget(config, _mix(300, 100), SLO, candidates=(1024, 4096), capacity_of=_fake(rates))
    assert (choice.tokens, choice.gain) == (2048, 0.0)
    rates[1024] = 10.2
    choice = best_token_budget(config, _mix(300, 100), SLO, candidates=(1024, 4096), capacity_of=_fake(rates))
    assert choice.tokens == 1024
    assert math.isclose(choice.gain, 0.02)


def test_a_budget_whose_activations_do_not_fit_is_skipped() -> None:
    config = _config(max_num_batched_tokens=2048)
    rates = {1024: 9.0, 2048: 10.0, 4096: -1.0}
    choice = best_token_budget(config, _mix(300, 100), SLO, candidates=(1024, 4096), capacity_of=_fake(rates))
    assert choice.tokens == 2048
