"""The capacity model: a replica's highest rate within the SLO, from the twin's calibration."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from thrifty.capacity import LatencySlo, MixError, ReplicaModel, RequestMix
from thrifty.twin import EngineConfig, engine_config_from_vllm_args, step_cost_model

SLO = LatencySlo(ttft_p95_s=2.0, itl_p95_s=0.05)
LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"


def _config(**args: object) -> EngineConfig:
    base: dict[str, object] = {"model": LLAMA_8B, "max_model_len": 16384, "enable_prefix_caching": False}
    return engine_config_from_vllm_args({**base, **args}, gpu_product="NVIDIA-H100-80GB-HBM3")


def _mix(prompt: float, output: float, *, hit: float = 0.0, spread: float = 0.5) -> RequestMix:
    rng = random.Random(f"{prompt}-{output}")
    prompts = [max(1.0, prompt * math.exp(rng.gauss(0, spread))) for _ in range(500)]
    outputs = [max(2.0, output * math.exp(rng.gauss(0, spread))) for _ in range(500)]
    return RequestMix.from_requests(prompts, outputs, prefix_hit_rate=hit)


CHAT = _mix(1000, 200)


@pytest.mark.parametrize(
    ("prompts", "outputs", "hit", "message"),
    [
        ((), (10.0,), 0.0, "prompt_tokens: needs at least one value"),
        ((10.0,), (0.5,), 0.0, "output_tokens: every length must be a finite number >= 1"),
        ((math.nan,), (10.0,), 0.0, "prompt_tokens: every length must be a finite number >= 1"),
        ((10.0,), (10.0,), 1.0, "prefix_hit_rate: must be in [0, 1)"),
        ((10.0,), (10.0,), -0.1, "prefix_hit_rate: must be in [0, 1)"),
    ],
)
def test_a_mix_that_cannot_describe_requests_is_refused_naming_the_field(
    prompts: tuple[float, ...], outputs: tuple[float, ...], hit: float, message: str
) -> None:
    with pytest.raises(MixError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        RequestMix(prompts, outputs, hit)


def test_a_mix_from_histograms_matches_the_mix_from_the_requests_it_counts() -> None:
    rng = random.Random(3)
    prompts = [rng.uniform(100, 3000) for _ in range(5000)]
    outputs = [rng.uniform(20, 500) for _ in range(5000)]
    bounds = [50, 100, 200, 500, 1000, 1500, 2000, 2500, 3000, 5000, math.inf]

    def buckets(values: list[float]) -> list[tuple[float, float]]:
        return [(bound, float(sum(1 for v in values if v <= bound))) for bound in bounds]

    exact = RequestMix.from_requests(prompts, outputs)
    binned = RequestMix.from_histograms(buckets(prompts), buckets(outputs))
    assert binned.mean_prompt == pytest.approx(exact.mean_prompt, rel=0.03)
    assert binned.mean_output == pytest.approx(exact.mean_output, rel=0.05)


def test_an_empty_histogram_is_refused() -> None:
    with pytest.raises(MixError, match="prompt tokens histogram: the histogram has no observations"):
        RequestMix.from_histograms([(100.0, 0.0), (math.inf, 0.0)], [(100.0, 5.0), (math.inf, 5.0)])


def test_at_low_load_the_mean_gap_is_one_decode_step_of_the_calibration() -> None:
    config = _config()
    prediction = ReplicaModel(config).predict(CHAT, 0.05, itl_slo_s=0.05)
    one_decode = step_cost_model(config).step_seconds(
        tokens=1, sampled=1, context_tokens=1200, attention_pairs=1200, decoding=1
    )
    assert prediction.mean_itl_s == pytest.approx(one_decode, rel=0.1)
    assert prediction.overflow == ""
    assert prediction.concurrency < 1


def test_the_capacity_meets_the_slo_and_a_tenth_more_breaks_it() -> None:
    model = ReplicaModel(_config())
    capacity = model.capacity(CHAT, SLO)
    assert capacity.rate_per_s > 1
    assert capacity.binding == "ITL p95"
    assert capacity.at_capacity.slow_share <= 0.05
    assert capacity.at_capacity.ttft_p95_s <= 2.0
    beyond = model.predict(CHAT, capacity.rate_per_s * 1.1, itl_slo_s=0.05)
    assert beyond.slow_share > 0.05 or beyond.overflow


def test_load_raises_concurrency_and_the_mean_gap() -> None:
    model = ReplicaModel(_config())
    rates = [0.5, 2, 5, 10]
    predictions = [model.predict(CHAT, rate, itl_slo_s=0.05) for rate in rates]
    for lighter, heavier in itertools.pairwise(predictions):
        assert heavier.concurrency > lighter.concurrency
        assert heavier.mean_itl_s >= lighter.mean_itl_s
        assert heavier.slow_share >= lighter.slow_share


def test_a_slower_engine_sustains_less_and_the_scale_is_visible_in_the_gap() -> None:
    nominal = ReplicaModel(_config())
    slow = nominal.rescaled(1.3)
    assert slow.capacity(CHAT, SLO).rate_per_s < 0.9 * nominal.capacity(CHAT, SLO).rate_per_s
    light = 0.05
    ratio = slow.predict(CHAT, light).mean_itl_s / nominal.predict(CHAT, light).mean_itl_s
    assert ratio == pytest.approx(1.3, rel=0.02)


def test_fp8_weights_and_prefix_hits_each_raise_the_capacity() -> None:
    long_prompts = _mix(3000, 150)
    bf16 = ReplicaModel(_config()).capacity(long_prompts, SLO).rate_per_s
    fp8 = ReplicaModel(_config(quantization="fp8")).capacity(long_prompts, SLO).rate_per_s
    cached = ReplicaModel(_config()).capacity(_mix(3000, 150, hit=0.6), SLO).rate_per_s
    assert fp8 > 1.2 * bf16
    assert cached > 1.5 * bf16


def test_a_small_max_num_seqs_binds_long_generations() -> None:
    capacity = ReplicaModel(_config(max_num_seqs=16)).capacity(_mix(300, 800), SLO)
    assert capacity.binding == "max_num_seqs"
    # Requests queue for a place (Erlang C) before the mean occupancy reaches the 16 places.
    assert 0.6 * 16 < capacity.concurrency < 16
    assert capacity.at_capacity.seat_wait_p95_s > 0


def test_a_small_token_budget_trades_itl_headroom_for_ttft() -> None:
    """Chunks of 512 tokens never make a step longer than the ITL SLO, so only TTFT or the
    throughput of prefill can bind; with 8192 the long prefill steps bind ITL first."""
    long_prompts = _mix(4000, 100, spread=0.2)
    small = ReplicaModel(_config(max_num_batched_tokens=512)).capacity(long_prompts, SLO)
    large = ReplicaModel(_config()).capacity(long_prompts, SLO)
    assert large.binding == "ITL p95"
    assert small.binding in {"TTFT p95", "prefill"}


def test_a_rate_no_replica_could_carry_overflows_and_says_what() -> None:
    prediction = ReplicaModel(_config()).predict(CHAT, 500.0, itl_slo_s=0.05)
    assert prediction.overflow
    assert prediction.slow_share == 1.0


def test_equal_inputs_give_equal_capacities() -> None:
    first = ReplicaModel(_config()).capacity(CHAT, SLO)
    second = ReplicaModel(_config()).capacity(CHAT, SLO)
    assert first == second


def test_step_time_scale_must_be_positive() -> None:
    with pytest.raises(ValueError, match="step_time_scale: must be a positive number"):
        ReplicaModel(_config(), step_time_scale=0.0)
