"""thrifty.vllm_args agrees with vLLM's real `vllm serve` parser and `EngineArgs.from_cli_args`.

All lists go to vLLM in one batch (starting vLLM takes seconds), then each test reads its share.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from vllm_parser import RealParse, check_with_real_parser

from thrifty.vllm_args import InvalidEngineArgs, OptionSpec, load_spec, parse_engine_args

LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"
LLAMA_70B_AWQ = "hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4"
QWEN_SMALL = "Qwen/Qwen2.5-1.5B-Instruct"


def spec_config(**keys: Any) -> str:
    return json.dumps(keys)


# Command lines a platform engineer would run, each accepted by both.
REALISTIC: dict[str, list[str]] = {
    "fp8 on one H100": [
        *[LLAMA_8B, "--served-model-name", "llama-8b", "--host", "0.0.0.0", "--port", "8000"],
        *["--quantization", "fp8", "--kv-cache-dtype", "fp8", "--max-model-len", "8192"],
        *["--max-num-seqs", "256", "--gpu-memory-utilization", "0.9"],
    ],
    "awq tensor parallel with a draft model": [
        *[LLAMA_70B_AWQ, "--quantization", "awq", "--tensor-parallel-size", "4"],
        "--speculative-config",
        spec_config(method="draft_model", model="meta-llama/Llama-3.2-1B-Instruct", num_speculative_tokens=5),
    ],
    "ngram speculation with prefix caching": [
        *[QWEN_SMALL, "--enable-prefix-caching", "--speculative-config"],
        spec_config(method="ngram", num_speculative_tokens=4, prompt_lookup_max=4, prompt_lookup_min=2),
    ],
    "prefix caching off": [QWEN_SMALL, "--no-enable-prefix-caching"],
    "prefix caching off, disable spelling": [QWEN_SMALL, "--disable-prefix-caching"],
    "batch limits with chunked prefill": [
        *[LLAMA_8B, "--max-num-seqs", "256", "--max-num-batched-tokens", "8192", "--enable-chunked-prefill"]
    ],
    "chunked prefill off": [LLAMA_8B, "--no-enable-chunked-prefill", "--max-num-batched-tokens", "16k"],
    "gptq marlin and short tensor parallel flag": [
        LLAMA_70B_AWQ,
        "--quantization",
        "gptq_marlin",
        "-tp",
        "2",
    ],
    "fp8 kv cache e5m2": [LLAMA_8B, "--kv-cache-dtype", "fp8_e5m2", "--max-model-len", "32K"],
    "eagle3 by dotted keys": [
        *[LLAMA_8B, "--speculative-config.method", "eagle3"],
        *["--speculative-config.model", "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B"],
        *["--speculative-config.num_speculative_tokens", "3"],
    ],
    "mtp": [LLAMA_8B, "--speculative-config", spec_config(method="mtp", num_speculative_tokens=1)],
    "model as an option": ["--model", LLAMA_8B, "--served-model-name", "llama", "--port", "8001"],
    "underscore spellings": [LLAMA_8B, "--max_num_seqs", "128", "--gpu_memory_utilization", "0.8"],
    "model on a volume": [
        "/models/pvc/llama-8b",
        "--served-model-name",
        "llama",
        "--load-format",
        "safetensors",
    ],
    "eager with optimization level": [
        LLAMA_8B,
        "--enforce-eager",
        "-O3",
        "--dtype",
        "bfloat16",
        "--seed",
        "7",
    ],
    "cuda graph sizes as config json": [
        *[LLAMA_8B, "--compilation-config", spec_config(cudagraph_capture_sizes=[1, 2, 4, 8])]
    ],
    "max model len auto": [LLAMA_8B, "--max-model-len", "auto", "--max-num-seqs=64"],
}

# Mistakes both refuse.
REFUSED: dict[str, list[str]] = {
    "word for an int": [LLAMA_8B, "--max-num-seqs", "many"],
    "word for a float": [LLAMA_8B, "--gpu-memory-utilization", "most"],
    "unknown flag": [LLAMA_8B, "--enable-prefix-cache"],
    "dtype outside choices": [LLAMA_8B, "--dtype", "int8"],
    "broken speculative json": [LLAMA_8B, "--speculative-config", "{method: ngram}"],
    "missing value": [LLAMA_8B, "--max-num-seqs"],
    "flag where a value belongs": [LLAMA_8B, "--tensor-parallel-size", "--enforce-eager"],
    "stray positional": [LLAMA_8B, "--port", "8001", "8002"],
    "model twice": [LLAMA_8B, "--model", QWEN_SMALL],
    "switch with a value": [LLAMA_8B, "--enable-prefix-caching=true"],
    "served name before the model": ["--served-model-name", "llama", LLAMA_8B],
    "unknown compilation config key": [LLAMA_8B, "--compilation-config", spec_config(mdoe=3)],
    "decimal with a binary suffix": [LLAMA_8B, "--max-num-batched-tokens", "1.5K"],
    "dotted key on an int option": [LLAMA_8B, "--max-num-seqs.value", "8"],
    "exponent for an int": [LLAMA_8B, "--tensor-parallel-size", "1e3"],
}

# Thrifty refuses these on purpose although vLLM accepts them (see thrifty/vllm_args/parse.py).
STRICTER_THAN_VLLM: dict[str, list[str]] = {
    "abbreviated flag": [LLAMA_8B, "--max-num-seq", "8"],
    "value glued to a short flag": [LLAMA_8B, "-qfp8"],
    "json both whole and dotted": [
        *[LLAMA_8B, "--speculative-config", spec_config(method="ngram", num_speculative_tokens=4)],
        *["--speculative-config.prompt_lookup_max", "4"],
    ],
}

# Options vLLM checks against its environment or other flags after parsing. Thrifty's spec only
# covers what the parser itself decides, so for these a lone sample value is refused by vLLM alone.
CHECKED_AFTER_PARSING = {
    "chat_template": "vLLM reads a path-like template from disk",
    "enable_auto_tool_choice": "vLLM requires --tool-call-parser with it",
    "enable_log_outputs": "vLLM requires --enable-log-requests with it",
    "grpc_port": "vLLM requires VLLM_USE_RUST_FRONTEND=1 for it",
    "data_parallel_multi_port_external_lb": "vLLM requires --data-parallel-size > 1 with it",
}


def sample_command_lines(option: OptionSpec) -> Iterator[list[str]]:
    """Command lines that give `option` a plausible value, in each syntax the spec allows."""
    model = [] if option.dest == "model" else [LLAMA_8B]  # `--model` is the model itself
    if option.kind == "flag":
        yield [*model, option.flag]
        return
    if option.kind == "bool-optional":
        for spelling in option.option_strings:
            yield [*model, spelling]
        return
    if option.choices is not None:
        value = str(next(choice for choice in option.choices if choice is not None))
    else:
        value = {"int": "3", "float": "0.5", "json": "{}", "json-or-str": "{}", "id-list": "0,1"}.get(
            option.kind, "name=path" if option.kind == "lora-modules" else "some-value"
        )
    values = [value, value] if option.nargs == "+" else [value]
    yield [*model, option.flag, *values]
    yield [*model, f"{option.flag}={value}"]


def every_option_sample() -> dict[str, list[str]]:
    samples: dict[str, list[str]] = {}
    for option in load_spec().options.values():
        if option.dest == "config":  # refused by Thrifty on purpose: it reads a file
            continue
        for number, args in enumerate(sample_command_lines(option)):
            samples[f"{option.dest} #{number}"] = args
    return samples


@pytest.fixture(scope="module")
def real() -> dict[str, RealParse]:
    """vLLM's verdict on every list in this module, by case name."""
    cases = {**REALISTIC, **REFUSED, **STRICTER_THAN_VLLM, **every_option_sample()}
    return dict(zip(cases, check_with_real_parser(list(cases.values())), strict=True))


def ours(args: list[str]) -> dict[str, Any] | str:
    """Thrifty's reading of `args`, or its refusal message."""
    try:
        return parse_engine_args(args)
    except InvalidEngineArgs as error:
        return str(error)


def differing_values(mine: dict[str, Any], theirs: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {
        dest: (mine[dest], value) for dest, value in theirs.items() if dest in mine and mine[dest] != value
    }


@pytest.mark.parametrize("case", REALISTIC)
def test_realistic_command_line_is_accepted_by_both_and_read_alike(
    case: str, real: dict[str, RealParse]
) -> None:
    mine = ours(REALISTIC[case])
    assert real[case].ok, real[case].error
    assert isinstance(mine, dict), mine
    assert real[case].values is not None
    assert differing_values(mine, real[case].values) == {}


@pytest.mark.parametrize("case", REFUSED)
def test_mistake_is_refused_by_both(case: str, real: dict[str, RealParse]) -> None:
    assert isinstance(ours(REFUSED[case]), str)
    assert not real[case].ok, "vLLM accepts it"


@pytest.mark.parametrize("case", STRICTER_THAN_VLLM)
def test_deliberate_strictness_is_still_needed(case: str, real: dict[str, RealParse]) -> None:
    # If vLLM starts refusing one of these, move it to REFUSED.
    assert isinstance(ours(STRICTER_THAN_VLLM[case]), str)
    assert real[case].ok, real[case].error


def test_every_option_reads_alike_in_both(real: dict[str, RealParse]) -> None:
    disagreements, refused_after_parsing = [], set()
    for case, args in every_option_sample().items():
        dest = case.split(" #")[0]
        mine, theirs = ours(args), real[case]
        if dest in CHECKED_AFTER_PARSING and isinstance(mine, dict) and not theirs.ok:
            refused_after_parsing.add(dest)
        elif isinstance(mine, str) or not theirs.ok:
            verdict = mine if isinstance(mine, str) else "ok"
            disagreements.append(f"{args}: Thrifty says {verdict}; vLLM says {theirs.error or 'ok'}")
        elif theirs.values is not None and (diff := differing_values(mine, theirs.values)):
            disagreements.append(f"{args}: values differ (Thrifty, vLLM): {diff}")
    assert not disagreements, "\n".join(disagreements)
    # Keeps the list honest: each entry must still be refused by vLLM's checks after parsing.
    assert refused_after_parsing == set(CHECKED_AFTER_PARSING)
