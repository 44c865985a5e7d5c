"""The step-time roofline: memory-bound decode, compute-bound prefill, and what changes them."""

from __future__ import annotations

from typing import Any

import pytest

from thrifty.twin import StepCostModel, engine_config_from_vllm_args, step_cost_model

H100 = "NVIDIA-H100-80GB-HBM3"
LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"


def cost(**args: Any) -> StepCostModel:
    return step_cost_model(engine_config_from_vllm_args({"model": LLAMA_8B, **args}, gpu_product=H100))


def decode_step(model: StepCostModel, batch: int, context: int) -> float:
    return model.step_seconds(
        tokens=batch,
        sampled=batch,
        context_tokens=batch * (context + 1),
        attention_pairs=batch * (context + 1),
        decoding=batch,
    )


def prefill_step(model: StepCostModel, tokens: int) -> float:
    return model.step_seconds(
        tokens=tokens, sampled=1, context_tokens=tokens, attention_pairs=tokens * (tokens + 1) // 2
    )


def test_fp8_weights_decode_faster_than_bf16_at_small_batch() -> None:
    bf16 = decode_step(cost(), batch=1, context=512)
    fp8 = decode_step(cost(quantization="fp8"), batch=1, context=512)

    assert fp8 < 0.7 * bf16


def test_fp8_weights_prefill_faster_on_fp8_tensor_cores() -> None:
    assert prefill_step(cost(quantization="fp8"), 8192) < 0.7 * prefill_step(cost(), 8192)


def test_decode_step_grows_with_batch_and_with_context() -> None:
    model = cost()

    assert decode_step(model, 1, 1000) < decode_step(model, 16, 1000) < decode_step(model, 64, 1000)
    assert decode_step(model, 16, 500) < decode_step(model, 16, 2000) < decode_step(model, 16, 8000)


def test_llama_8b_decode_on_h100_is_in_the_published_range() -> None:
    # Single-stream decode of an 8B bf16 model on one H100 runs at 6-8 ms per token.
    assert 0.006 < decode_step(cost(), 1, 1000) < 0.008


def test_prefill_heavy_step_is_compute_bound() -> None:
    model = cost()
    memory = model.weight_read_s + model.kv_read_s_per_token * 8192
    step = prefill_step(model, 8192)

    assert step - model.c0_s > 10 * memory
    assert prefill_step(model, 4096) == pytest.approx(step / 2, rel=0.15)


def test_small_decode_step_is_memory_bound() -> None:
    model = cost()
    step = decode_step(model, 1, 1000)

    assert step == pytest.approx(model.c0_s + model.weight_read_s + model.kv_read_s_per_token * 1001)


def test_tensor_parallelism_divides_work_but_adds_all_reduce() -> None:
    def model(tp: int) -> StepCostModel:
        config = engine_config_from_vllm_args(
            {
                "model": "meta-llama/Llama-3.1-70B-Instruct",
                "tensor_parallel_size": tp,
                "max_model_len": 16384,
            },
            gpu_product=H100,
        )
        return step_cost_model(config)

    tp2, tp4 = model(2), model(4)

    assert tp2.allreduce_fixed_s > 0
    assert tp4.weight_read_s == pytest.approx(tp2.weight_read_s / 2)
    assert decode_step(tp4, 8, 1000) < decode_step(tp2, 8, 1000)
    assert cost().allreduce_fixed_s == 0


def test_draft_model_adds_drafting_time_to_decode_steps_only() -> None:
    spec = {"method": "draft_model", "model": "meta-llama/Llama-3.2-1B-Instruct", "num_speculative_tokens": 4}
    plain, speculative = cost(), cost(speculative_config=spec)

    assert decode_step(speculative, 4, 1000) > decode_step(plain, 4, 1000)
    assert prefill_step(speculative, 2048) == pytest.approx(prefill_step(plain, 2048))
    assert cost(speculative_config={"method": "ngram", "num_speculative_tokens": 4}).draft_fixed_s == 0
