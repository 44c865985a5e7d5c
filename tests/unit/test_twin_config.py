"""The twin's configuration: vLLM flags and defaults, model shapes, GPU calibration, memory sizing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thrifty.twin import (
    CalibrationError,
    TwinConfigError,
    architecture_for,
    available_gpus,
    engine_config_from_vllm_args,
    load_calibration,
    load_calibration_file,
    size_server,
)

H100 = "NVIDIA-H100-80GB-HBM3"
L4 = "NVIDIA-L4"
LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"


def test_vllm_defaults_apply_when_flags_are_absent() -> None:
    config = engine_config_from_vllm_args({"model": LLAMA_8B}, gpu_product=H100)

    assert config.max_num_batched_tokens == 8192
    assert config.max_num_seqs == 1024
    assert config.enable_chunked_prefill is True
    assert config.enable_prefix_caching is True
    assert config.max_model_len == 131072
    assert config.gpu_memory_utilization == 0.92
    assert config.weight_format.name == "bf16"
    assert config.served_model_name == LLAMA_8B
    assert config.block_size == 16


def test_positional_model_tag_wins_over_the_model_option() -> None:
    config = engine_config_from_vllm_args(
        {"model_tag": LLAMA_8B, "model": "Qwen/Qwen3-0.6B"}, gpu_product=H100
    )

    assert config.model == LLAMA_8B
    assert config.architecture.name == "llama-3.1-8b"


def test_throughput_performance_mode_doubles_the_batch_defaults() -> None:
    config = engine_config_from_vllm_args(
        {"model": LLAMA_8B, "performance_mode": "throughput"}, gpu_product=H100
    )

    assert (config.max_num_batched_tokens, config.max_num_seqs) == (16384, 2048)


def test_pipeline_parallelism_is_refused_as_unmodelled() -> None:
    with pytest.raises(TwinConfigError, match="pipeline_parallel_size: the twin models one engine"):
        engine_config_from_vllm_args({"model": LLAMA_8B, "pipeline_parallel_size": 2}, gpu_product=H100)


def test_gpus_under_70_gib_get_vllms_smaller_batch_defaults() -> None:
    config = engine_config_from_vllm_args({"model": LLAMA_8B, "max_model_len": 8192}, gpu_product=L4)

    assert (config.max_num_batched_tokens, config.max_num_seqs) == (2048, 256)


def test_flags_override_defaults_and_the_first_served_name_is_the_label() -> None:
    config = engine_config_from_vllm_args(
        {
            "model": LLAMA_8B,
            "served_model_name": ["llama-8b", "alias"],
            "max_num_seqs": 64,
            "max_num_batched_tokens": 4096,
            "enable_prefix_caching": False,
            "port": 9000,
        },
        gpu_product=H100,
    )

    assert (config.served_model_name, config.max_num_seqs, config.max_num_batched_tokens) == (
        "llama-8b",
        64,
        4096,
    )
    assert config.enable_prefix_caching is False
    assert config.port == 9000


def test_architectures_give_published_parameter_counts() -> None:
    # Model cards: 8.03B, 70.6B, 1.24B, 7.62B parameters.
    assert architecture_for(LLAMA_8B).total_params == pytest.approx(8.03e9, rel=0.01)
    assert architecture_for("meta-llama/Meta-Llama-3.1-70B-Instruct").total_params == pytest.approx(
        70.6e9, rel=0.01
    )
    assert architecture_for("meta-llama/Llama-3.2-1B").total_params == pytest.approx(1.24e9, rel=0.01)
    assert architecture_for("Qwen/Qwen2.5-7B-Instruct-AWQ").total_params == pytest.approx(7.62e9, rel=0.01)


def test_non_integer_argument_is_refused_by_name() -> None:
    with pytest.raises(TwinConfigError, match="max_num_seqs: expected an integer, got 'many'"):
        engine_config_from_vllm_args({"model": LLAMA_8B, "max_num_seqs": "many"}, gpu_product=H100)


def test_pinned_vllms_default_model_is_known() -> None:
    config = engine_config_from_vllm_args({"model": "Qwen/Qwen3-0.6B"}, gpu_product="NVIDIA-L4")

    assert config.max_model_len == 40960
    assert config.architecture.total_params == pytest.approx(0.6e9, rel=0.01)


def test_unknown_model_error_names_the_model_and_the_known_ones() -> None:
    with pytest.raises(TwinConfigError, match=r"model: model 'facebook/opt-125m'.*llama-3.1-8b"):
        engine_config_from_vllm_args({"model": "facebook/opt-125m"}, gpu_product=H100)


def test_fp8_kv_cache_holds_twice_the_tokens() -> None:
    auto = size_server(engine_config_from_vllm_args({"model": LLAMA_8B}, gpu_product=H100))
    fp8 = size_server(
        engine_config_from_vllm_args({"model": LLAMA_8B, "kv_cache_dtype": "fp8"}, gpu_product=H100)
    )

    assert fp8.kv_bytes_per_token_per_gpu * 2 == auto.kv_bytes_per_token_per_gpu
    assert fp8.num_gpu_blocks in (2 * auto.num_gpu_blocks, 2 * auto.num_gpu_blocks + 1)


def test_llama_8b_kv_cache_on_h100_matches_the_usual_size() -> None:
    # 128 KiB of KV per token; vLLM reports about 440k tokens for this model at 0.9 utilization.
    sizing = size_server(
        engine_config_from_vllm_args({"model": LLAMA_8B, "gpu_memory_utilization": 0.9}, gpu_product=H100)
    )
    assert sizing.kv_bytes_per_token_per_gpu == 131072
    assert 400_000 < sizing.kv_capacity_tokens < 480_000


def test_quantization_shrinks_the_weights() -> None:
    def weights(args: dict[str, object]) -> float:
        return size_server(engine_config_from_vllm_args(args, gpu_product=H100)).weight_bytes_per_gpu

    bf16 = weights({"model": LLAMA_8B})
    fp8 = weights({"model": LLAMA_8B, "quantization": "fp8"})
    awq = weights({"model": LLAMA_8B, "quantization": "awq"})
    by_name = weights({"model": "hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4"})

    assert bf16 == pytest.approx(16.06e9, rel=0.01)
    assert fp8 < 0.6 * bf16
    assert awq < 0.7 * fp8
    assert by_name == awq


def test_unknown_quantization_is_refused_by_name() -> None:
    with pytest.raises(TwinConfigError, match="quantization: the twin does not model 'hqq'"):
        engine_config_from_vllm_args({"model": LLAMA_8B, "quantization": "hqq"}, gpu_product=H100)


def test_tensor_parallelism_splits_weights_and_multiplies_kv_memory() -> None:
    args = {"model": "meta-llama/Llama-3.1-70B-Instruct", "max_model_len": 16384}
    tp2 = size_server(engine_config_from_vllm_args({**args, "tensor_parallel_size": 2}, gpu_product=H100))
    tp4 = size_server(engine_config_from_vllm_args({**args, "tensor_parallel_size": 4}, gpu_product=H100))

    assert tp4.weight_bytes_per_gpu == pytest.approx(tp2.weight_bytes_per_gpu / 2)
    assert tp4.kv_bytes_per_token_per_gpu * 2 == tp2.kv_bytes_per_token_per_gpu
    assert tp4.kv_capacity_tokens > 2 * tp2.kv_capacity_tokens


def test_model_that_does_not_fit_one_gpu_is_refused() -> None:
    config = engine_config_from_vllm_args({"model": "meta-llama/Llama-3.1-70B-Instruct"}, gpu_product=H100)

    with pytest.raises(TwinConfigError, match=r"gpu_memory_utilization: .*cannot hold .* of weights"):
        size_server(config)


def test_max_model_len_beyond_the_kv_cache_is_refused_with_the_largest_that_fits() -> None:
    config = engine_config_from_vllm_args({"model": LLAMA_8B}, gpu_product=L4)

    with pytest.raises(
        TwinConfigError, match=r"max_model_len: 131072 tokens .* lower --max-model-len to at most \d+"
    ):
        size_server(config)


def test_without_chunked_prefill_the_budget_must_hold_a_whole_prompt() -> None:
    with pytest.raises(
        TwinConfigError, match="max_num_batched_tokens: 2048 is smaller than max_model_len 8192"
    ):
        engine_config_from_vllm_args(
            {
                "model": LLAMA_8B,
                "enable_chunked_prefill": False,
                "max_num_batched_tokens": 2048,
                "max_model_len": 8192,
            },
            gpu_product=H100,
        )


def test_speculative_draft_model_adds_its_weights_and_expected_acceptance() -> None:
    spec = {"method": "draft_model", "model": "meta-llama/Llama-3.2-1B-Instruct", "num_speculative_tokens": 3}
    config = engine_config_from_vllm_args(
        {"model": LLAMA_8B, "speculative_config": spec}, gpu_product=H100, spec_token_acceptance_rate=0.5
    )
    plain = size_server(engine_config_from_vllm_args({"model": LLAMA_8B}, gpu_product=H100))

    assert config.speculative is not None
    assert config.speculative.mean_accepted_tokens == pytest.approx(0.5 + 0.25 + 0.125)
    assert size_server(config).weight_bytes_per_gpu == pytest.approx(
        plain.weight_bytes_per_gpu + 2.47e9, rel=0.01
    )


def test_speculative_config_without_token_count_is_refused() -> None:
    with pytest.raises(TwinConfigError, match=r"speculative_config\.num_speculative_tokens"):
        engine_config_from_vllm_args(
            {"model": LLAMA_8B, "speculative_config": {"method": "ngram"}}, gpu_product=H100
        )


def test_load_time_is_weight_bytes_over_load_bandwidth_plus_overhead() -> None:
    config = engine_config_from_vllm_args(
        {"model": LLAMA_8B}, gpu_product=H100, load_bytes_per_s=4e9, load_overhead_s=10.0
    )

    assert size_server(config).load_seconds == pytest.approx(16.06e9 / 4e9 + 10.0, rel=0.01)


def test_shipped_calibrations_load_for_h100_and_l4() -> None:
    assert {H100, L4} <= set(available_gpus())
    h100 = load_calibration(H100)

    assert h100.gpu == H100
    assert h100.flops_fp8 == pytest.approx(2 * h100.flops_bf16, rel=0.01)
    assert "datasheet" in h100.source


def test_unknown_gpu_product_names_the_calibrated_ones() -> None:
    with pytest.raises(CalibrationError, match=r"'NVIDIA-B200'.*calibrated products: .*NVIDIA-L4"):
        load_calibration("NVIDIA-B200")


def test_calibration_file_errors_name_the_field(tmp_path: Path) -> None:
    data = json.loads(
        (Path(__file__).parents[2] / "operator/thrifty/twin/calibration/NVIDIA-L4.json").read_text()
    )
    data["eta_bw"] = 1.5
    del data["c0_s"]
    data["measurements"] = [{"batch": 1}]  # extra keys from a measurement are kept out of the way
    path = tmp_path / "gpu.json"
    path.write_text(json.dumps(data))

    with pytest.raises(
        CalibrationError, match=r"gpu.json: c0_s: Field required; eta_bw: Input should be less"
    ):
        load_calibration_file(path)
