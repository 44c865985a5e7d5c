"""thrifty.vllm_args: reading and checking `vllm serve` arguments against the pinned vLLM's spec.

These run without vLLM; tests/conformance checks the same behaviours against vLLM's real parser.
"""

from __future__ import annotations

import doctest
import json

import pytest

import thrifty.vllm_args
from thrifty.vllm_args import InvalidEngineArgs, load_spec, parse_engine_args, validate_engine_args
from thrifty.vllm_args import parse as parse_module
from thrifty.vllm_args import spec as spec_module
from thrifty.vllm_args import values as values_module

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
# What the vLLM twin reads from a pod's arguments.
TWIN_DESTS = [
    "max_num_seqs",
    "max_num_batched_tokens",
    "enable_prefix_caching",
    "enable_chunked_prefill",
    "gpu_memory_utilization",
    "kv_cache_dtype",
    "quantization",
    "tensor_parallel_size",
    "speculative_config",
    "max_model_len",
    "served_model_name",
    "model",
    "port",
    "host",
]


def refusal(args: list[str]) -> InvalidEngineArgs:
    with pytest.raises(InvalidEngineArgs) as caught:
        validate_engine_args(args)
    return caught.value


# The spec


def test_spec_is_the_pinned_release_and_loaded_once() -> None:
    spec = load_spec()
    assert spec.vllm_version == "0.33.0"
    assert load_spec() is spec
    assert len(spec.options) > 300


def test_spec_knows_every_flag_the_twin_reads() -> None:
    spec = load_spec()
    for dest in TWIN_DESTS:
        assert spec.option(dest).dest == dest


def test_spec_maps_every_spelling_to_its_option() -> None:
    spec = load_spec()
    assert spec.by_option_string["-tp"] is spec.option("tensor_parallel_size")
    assert spec.by_option_string["--device-memory-utilization"] is spec.option("gpu_memory_utilization")
    assert spec.option("gpu_memory_utilization").flag == "--gpu-memory-utilization"
    prefix_caching = spec.option("enable_prefix_caching")
    assert prefix_caching.negative_option_strings == {
        "--disable-prefix-caching",
        "--no-enable-prefix-caching",
    }


def test_spec_lists_the_quantization_methods_and_kv_cache_dtypes_vllm_ships() -> None:
    spec = load_spec()
    assert {"awq", "gptq", "fp8", "compressed-tensors"} <= set(spec.option("quantization").known_values or ())
    assert {"auto", "fp8", "fp8_e5m2"} <= set(spec.option("kv_cache_dtype").known_values or ())
    assert {"ngram", "draft_model", "eagle", "eagle3", "mtp"} <= set(spec.option("spec_method").choices or ())


def test_unknown_dest_names_itself() -> None:
    with pytest.raises(KeyError, match="max_num_seq'"):
        load_spec().option("max_num_seq")


def test_spec_json_is_sorted_and_pretty() -> None:
    text = (spec_module.resources.files("thrifty.vllm_args") / "spec.json").read_text(encoding="utf-8")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_docstring_examples_hold() -> None:
    for module in (thrifty.vllm_args, parse_module, spec_module, values_module):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0
        assert result.failed == 0, module.__name__


# Reading arguments


def test_defaults_fill_every_option_left_out() -> None:
    values = parse_engine_args([MODEL])
    assert values["model"] == MODEL
    assert values["port"] == 8000
    assert values["gpu_memory_utilization"] == 0.92
    assert values["kv_cache_dtype"] == "auto"
    assert values["tensor_parallel_size"] == 1
    for unset in ("max_num_seqs", "max_num_batched_tokens", "quantization", "speculative_config", "host"):
        assert values[unset] is None, unset
    assert values["enable_prefix_caching"] is None
    assert set(load_spec().options) <= set(values)


def test_editing_a_result_leaves_the_next_one_alone() -> None:
    parse_engine_args([MODEL])["hf_overrides"]["edited"] = True
    parse_engine_args([MODEL])["allowed_origins"].append("edited")
    values = parse_engine_args([MODEL])
    assert values["hf_overrides"] == {}
    assert values["allowed_origins"] == []


def test_values_come_back_typed() -> None:
    values = parse_engine_args(
        [
            *[MODEL, "--max-num-seqs", "256", "--gpu-memory-utilization", "0.85", "--enable-chunked-prefill"],
            *[
                "--speculative-config",
                '{"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 5}',
            ],
        ]
    )
    assert values["max_num_seqs"] == 256
    assert values["gpu_memory_utilization"] == 0.85
    assert values["enable_chunked_prefill"] is True
    assert values["speculative_config"] == {
        "method": "ngram",
        "num_speculative_tokens": 4,
        "prompt_lookup_max": 5,
    }


def test_equals_and_separate_value_read_the_same() -> None:
    assert parse_engine_args([MODEL, "--max-num-seqs=64"]) == parse_engine_args(
        [MODEL, "--max-num-seqs", "64"]
    )
    assert parse_engine_args([MODEL, "-tp=4"])["tensor_parallel_size"] == 4


def test_underscores_in_a_flag_read_as_dashes() -> None:
    values = parse_engine_args([MODEL, "--max_num_seqs", "32", "--no_enable_prefix_caching"])
    assert values["max_num_seqs"] == 32
    assert values["enable_prefix_caching"] is False


def test_switch_spellings_turn_it_on_and_off() -> None:
    assert parse_engine_args([MODEL, "--enable-prefix-caching"])["enable_prefix_caching"] is True
    assert parse_engine_args([MODEL, "--no-enable-prefix-caching"])["enable_prefix_caching"] is False
    assert parse_engine_args([MODEL, "--disable-prefix-caching"])["enable_prefix_caching"] is False
    assert parse_engine_args([MODEL, "--disable-log-stats"])["disable_log_stats"] is True


def test_last_occurrence_wins_and_repeatable_flags_append() -> None:
    values = parse_engine_args(
        [MODEL, "--enable-prefix-caching", "--no-enable-prefix-caching", "--port", "1", "--port", "2"]
    )
    assert values["enable_prefix_caching"] is False
    assert values["port"] == 2
    assert parse_engine_args([MODEL, "--middleware", "a.b", "--middleware", "c.d"])["middleware"] == [
        "a.b",
        "c.d",
    ]


def test_model_option_is_read_as_the_positional_model() -> None:
    values = parse_engine_args(["--port", "8001", "--model", MODEL])
    assert values["model"] == MODEL
    assert values["model_tag"] == MODEL
    assert parse_engine_args(["--port", "8001", MODEL])["model"] == MODEL


def test_no_model_leaves_vllms_default_model() -> None:
    assert parse_engine_args(["--port", "8001"])["model"] == load_spec().option("model").default
    assert parse_engine_args([])["model"] == load_spec().option("model").default


def test_list_options_take_every_following_value() -> None:
    values = parse_engine_args([MODEL, "--served-model-name", "llama", "llama-8b", "--port", "8001"])
    assert values["served_model_name"] == ["llama", "llama-8b"]
    assert parse_engine_args([MODEL, "--served-model-name=llama"])["served_model_name"] == ["llama"]


def test_size_suffixes_follow_vllms_decimal_and_binary_rules() -> None:
    values = parse_engine_args([MODEL, "--max-num-batched-tokens", "8k", "--max-model-len", "32K"])
    assert values["max_num_batched_tokens"] == 8000
    assert values["max_model_len"] == 32768
    assert parse_engine_args([MODEL, "--max-model-len", "auto"])["max_model_len"] == -1
    assert parse_engine_args([MODEL, "--max-model-len", "-1"])["max_model_len"] == -1


def test_none_literal_means_unset_for_optional_options() -> None:
    assert (
        parse_engine_args([MODEL, "--quantization", "fp8", "--quantization", "None"])["quantization"] is None
    )


def test_dotted_keys_build_the_json_option() -> None:
    values = parse_engine_args(
        [
            *[MODEL, "--speculative-config.method", "ngram", "--speculative-config.num_speculative_tokens=5"],
            *["--speculative_config.prompt_lookup_max", "4k", "--compilation-config.splitting_ops+", "a,b"],
        ]
    )
    assert values["speculative_config"] == {
        "method": "ngram",
        "num_speculative_tokens": 5,
        "prompt_lookup_max": 4000,
    }
    assert values["compilation_config"] == {"splitting_ops": ["a", "b"]}


def test_optimization_level_shorthand() -> None:
    assert parse_engine_args([MODEL, "-O3"])["optimization_level"] == "3"
    assert parse_engine_args([MODEL, "-O", "1"])["optimization_level"] == "1"


def test_converters_vllm_applies_to_strings() -> None:
    values = parse_engine_args([MODEL, "--moe-backend", "Flashinfer-Cutlass", "--reasoning-parser", "None"])
    assert values["moe_backend"] == "flashinfer_cutlass"
    assert values["reasoning_parser"] == ""
    assert parse_engine_args([MODEL, "--device-ids", "0, 2,GPU-a1"])["device_ids"] == [0, 2, "GPU-a1"]
    assert parse_engine_args([MODEL, "--hf-overrides", "x"])["hf_overrides"] == "x"
    assert parse_engine_args([MODEL, "--hf-overrides", '{"a": 1}'])["hf_overrides"] == {"a": 1}


def test_a_value_may_start_with_a_dash_when_it_holds_a_space() -> None:
    assert parse_engine_args([MODEL, "--revision", "-a b"])["revision"] == "-a b"


def test_optional_value_option_stores_its_constant_when_bare() -> None:
    assert parse_engine_args([MODEL, "--hf-token"])["hf_token"] is True


# Refusals: each names the flag, what is wrong and where


def test_unknown_flag_suggests_the_closest_one() -> None:
    error = refusal([MODEL, "--max-num-seqs", "8", "--enable-prefix-cache"])
    assert error.flag == "--enable-prefix-cache"
    assert error.index == 3
    assert "not a vLLM 0.33.0 flag; did you mean --enable-prefix-caching?" in str(error)
    assert "args[3] = '--enable-prefix-cache'" in str(error)
    assert isinstance(error, ValueError)


def test_abbreviated_flag_is_refused_with_the_full_name() -> None:
    error = refusal([MODEL, "--max-num-seq", "8"])
    assert "abbreviation of --max-num-seqs" in str(error)
    assert "ambiguous" in str(refusal([MODEL, "--max-num", "8"]))


def test_value_glued_to_a_short_flag_is_refused() -> None:
    assert "write -q 'fp8' as two arguments" in str(refusal([MODEL, "-qfp8"]))


def test_bad_int_names_flag_value_and_index() -> None:
    error = refusal([MODEL, "--tensor-parallel-size", "four"])
    assert error.flag == "--tensor-parallel-size"
    assert error.index == 2
    assert "expects a whole number such as 8192, got 'four'" in str(error)
    assert "1e3" in str(refusal([MODEL, "--max-num-seqs", "1e3"]))


def test_decimal_with_binary_suffix_is_refused() -> None:
    assert "decimal with the binary suffix K" in str(refusal([MODEL, "--max-num-batched-tokens", "1.5K"]))


def test_bad_float_is_refused() -> None:
    assert "expects a number such as 0.9, got 'most'" in str(
        refusal([MODEL, "--gpu-memory-utilization", "most"])
    )


def test_value_outside_choices_lists_them() -> None:
    error = refusal([MODEL, "--dtype", "bfloat-16"])
    assert "'bfloat-16' is not one of its choices (did you mean 'bfloat16'?)" in str(error)
    assert "auto, bfloat16, float, float16, float32, half" in str(error)


def test_missing_value_is_refused_at_the_end_and_before_another_flag() -> None:
    assert "expects a value, but the arguments end there" in str(refusal([MODEL, "--max-num-seqs"]))
    error = refusal([MODEL, "--max-num-seqs", "--port", "8001"])
    assert error.index == 1
    assert "'--port' follows" in str(error)


def test_invalid_json_is_refused_with_the_parse_error() -> None:
    error = refusal([MODEL, "--speculative-config", "{method: ngram}"])
    assert error.flag == "--speculative-config"
    assert error.index == 2
    assert "expects JSON" in str(error)


def test_config_object_with_unknown_key_is_refused() -> None:
    error = refusal([MODEL, "--compilation-config", '{"mdoe": 3}'])
    assert "has no key 'mdoe' (did you mean 'mode'?)" in str(error)
    assert "needs the key(s) path" in str(refusal([MODEL, "--lora-modules", '{"name": "a"}']))


def test_switch_with_a_value_is_refused() -> None:
    assert "takes no value" in str(refusal([MODEL, "--enable-prefix-caching=true"]))


def test_second_positional_is_refused() -> None:
    error = refusal([MODEL, "--port", "8001", "8002"])
    assert error.flag is None
    assert error.index == 3
    assert "the model is already" in str(error)
    assert "the model is already" in str(refusal([MODEL, "--model", "other/model"]))


def test_served_model_name_needs_the_model_first() -> None:
    assert "model as the first argument" in str(refusal(["--served-model-name", "llama", MODEL]))
    validate_engine_args(["--model", MODEL, "--served-model-name", "llama"])


def test_json_option_given_whole_and_by_dotted_keys_is_refused() -> None:
    error = refusal(
        [
            MODEL,
            "--speculative-config",
            '{"method": "ngram"}',
            "--speculative-config.num_speculative_tokens",
            "3",
        ]
    )
    assert error.index == 3
    assert "vLLM would keep only the dotted keys" in str(error)


def test_dotted_keys_on_a_plain_option_are_refused() -> None:
    assert "not a JSON option" in str(refusal([MODEL, "--max-num-seqs.value", "8"]))


def test_config_file_is_refused() -> None:
    assert "config file" in str(refusal([MODEL, "--config", "serve.yaml"]))


def test_help_and_bare_double_dash_are_refused() -> None:
    assert "not a vLLM 0.33.0 flag" in str(refusal([MODEL, "--help"]))
    assert "'--' is not supported" in str(refusal([MODEL, "--"]))
