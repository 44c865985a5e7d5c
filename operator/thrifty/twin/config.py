"""The twin's view of one vLLM server: engine flags, model shape and GPU, in one frozen value.

`engine_config_from_vllm_args` turns vLLM's parsed arguments (keyed by argparse `dest`, as
`thrifty.vllm_args.parse_engine_args` returns them) into an `EngineConfig`, applying vLLM's own
defaults for what the flags leave out, so the same container arguments that start a real vLLM pod
configure its twin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from thrifty.twin.architectures import ModelArchitecture, UnknownModelError, architecture_for
from thrifty.twin.gpu_calibration import GpuCalibration, load_calibration


class TwinConfigError(ValueError):
    """The vLLM arguments cannot describe a server the twin (or vLLM itself) would start."""


# Weight formats the twin distinguishes: bytes per parameter of the quantized layers, and which
# tensor-core peak their matmuls run at. 4-bit formats (group size 128) keep an fp16 scale and a
# 4-bit zero point per group, about 0.02 byte per parameter on top of the half byte.
_FOUR_BIT_BYTES = 0.5 + 2.5 / 128


@dataclass(frozen=True, slots=True)
class WeightFormat:
    """How the decoder layers' weights are stored and multiplied."""

    name: str
    """`bf16`, `fp8`, `int8` or `int4` (AWQ, GPTQ and friends)."""
    bytes_per_param: float
    """Bytes per parameter of the quantized layers (embedding and head stay 16-bit)."""
    uses_fp8_flops: bool
    """True when the matmuls run on the fp8/int8 tensor cores; 4-bit kernels dequantize to 16-bit."""


BF16 = WeightFormat("bf16", 2.0, uses_fp8_flops=False)
FP8 = WeightFormat("fp8", 1.0, uses_fp8_flops=True)
INT8 = WeightFormat("int8", 1.0, uses_fp8_flops=True)
INT4 = WeightFormat("int4", _FOUR_BIT_BYTES, uses_fp8_flops=False)

_QUANTIZATION_FORMATS: dict[str, WeightFormat] = {
    "fp8": FP8,
    "fbgemm_fp8": FP8,
    "modelopt": FP8,
    "ptpc_fp8": FP8,
    "int8": INT8,
    "w8a8": INT8,
    "experts_int8": INT8,
    "awq": INT4,
    "awq_marlin": INT4,
    "gptq": INT4,
    "gptq_marlin": INT4,
    "marlin": INT4,
    "bitsandbytes": INT4,
    "gguf": INT4,
}

# vLLM reads the quantization of a pre-quantized checkpoint from its config; the twin has no
# config, so it reads the usual name suffixes instead.
_NAME_HINTS: tuple[tuple[str, WeightFormat], ...] = (
    ("awq", INT4),
    ("gptq", INT4),
    ("w4a16", INT4),
    ("int4", INT4),
    ("fp8", FP8),
    ("w8a8", INT8),
    ("int8", INT8),
)


def weight_format_for(quantization: str | None, model: str) -> WeightFormat:
    """The weight format from `--quantization`, or from the model name when the flag is unset."""
    if quantization and quantization.lower() not in ("none", "compressed-tensors"):
        try:
            return _QUANTIZATION_FORMATS[quantization.lower()]
        except KeyError:
            raise TwinConfigError(
                f"quantization: the twin does not model {quantization!r}; "
                f"modelled: {', '.join(sorted(_QUANTIZATION_FORMATS))}"
            ) from None
    lowered = model.lower()
    for hint, weight_format in _NAME_HINTS:
        if hint in lowered:
            return weight_format
    return BF16


# Expected acceptance of one draft token, by method, when the caller gives none: rough middles of
# published acceptance rates (draft models and EAGLE heads on chat data accept most short drafts;
# n-gram lookup accepts far fewer outside code and summarisation).
_DEFAULT_ACCEPTANCE: dict[str, float] = {"ngram": 0.4, "suffix": 0.4}
_DEFAULT_ACCEPTANCE_RATE = 0.7
_HEAD_METHODS = frozenset({"eagle", "eagle3", "medusa", "mlp_speculator", "mtp", "deepseek_mtp"})


@dataclass(frozen=True, slots=True)
class SpeculativeDecoding:
    """Speculative decoding as the twin models it: k drafts per step, some of them accepted."""

    method: str
    """vLLM's `speculative_config.method`: `draft_model`, `eagle`, `ngram`, ..."""
    num_speculative_tokens: int
    """k: draft tokens proposed per request per step; the target verifies 1 + k tokens."""
    token_acceptance_rate: float
    """Probability that one draft token is accepted, given the ones before it were."""
    draft: ModelArchitecture | None
    """The draft model's shape for `draft_model`; None for heads and n-gram lookup."""

    @property
    def mean_accepted_tokens(self) -> float:
        """Expected accepted draft tokens per step: a + a^2 + ... + a^k for acceptance rate a."""
        rate = self.token_acceptance_rate
        return sum(rate**i for i in range(1, self.num_speculative_tokens + 1))

    @property
    def uses_draft_head(self) -> bool:
        """True for EAGLE/Medusa/MTP-style heads: about one extra decoder layer per draft token."""
        return self.method in _HEAD_METHODS


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Everything that decides how one (twin of a) vLLM server behaves.

    Build it with `engine_config_from_vllm_args`; the fields mirror vLLM's flags after vLLM's own
    defaults are applied.
    """

    model: str
    """`--model`: the Hugging Face name or path."""
    served_model_name: str
    """The first `--served-model-name`, else the model: the API's model id and the metrics label."""
    architecture: ModelArchitecture
    """The model's shape, from the registry."""
    gpu: GpuCalibration
    """The GPU product's datasheet figures and fitted step-time coefficients."""
    tensor_parallel_size: int = 1
    """`--tensor-parallel-size`: GPUs that split every layer (weights and KV heads)."""
    max_num_seqs: int = 256
    """`--max-num-seqs`: the most requests in the running batch."""
    max_num_batched_tokens: int = 2048
    """`--max-num-batched-tokens`: the most tokens computed in one step (decode + prefill chunks)."""
    max_model_len: int = 8192
    """`--max-model-len`: the longest prompt + output a request may have."""
    enable_chunked_prefill: bool = True
    """`--enable-chunked-prefill`: split long prompts across steps within the token budget."""
    enable_prefix_caching: bool = True
    """`--enable-prefix-caching`: reuse KV blocks of equal prefixes, found by block hash."""
    gpu_memory_utilization: float = 0.92
    """`--gpu-memory-utilization`: the share of each GPU's memory vLLM may use."""
    weight_format: WeightFormat = BF16
    """From `--quantization`, or the model name's suffix for pre-quantized checkpoints."""
    kv_cache_dtype: str = "auto"
    """`--kv-cache-dtype`: `auto` keeps 16-bit KV; `fp8*` halves the bytes per token."""
    block_size: int = 16
    """`--block-size`: tokens per KV block (the unit of allocation and of prefix caching)."""
    num_gpu_blocks_override: int | None = None
    """`--num-gpu-blocks-override`: a fixed KV capacity in blocks instead of one sized from memory."""
    speculative: SpeculativeDecoding | None = None
    """`--speculative-config`, with the twin's acceptance rate."""
    port: int = 8000
    """`--port`: where the pod serves."""
    load_bytes_per_s: float = 2e9
    """How fast weights stream from storage into GPU memory when the server starts."""
    load_overhead_s: float = 20.0
    """Start-up time besides weight loading: process start, profiling run, CUDA-graph capture."""

    @property
    def kv_bytes_per_element(self) -> int:
        """1 for an fp8 KV cache, else 2 (the 16-bit activation dtype)."""
        return 1 if self.kv_cache_dtype.lower().startswith("fp8") else 2


# vLLM picks larger batch defaults on GPUs of 70 GiB and more (`EngineArgs.get_batch_defaults`
# in vllm/engine/arg_utils.py, OpenAI API server context; A100 is excluded by name there), and
# doubles them under `--performance-mode throughput`.
_LARGE_GPU_BYTES = 70 * 2**30
# The pinned vLLM's defaults for flags a pod may leave out (operator/thrifty/vllm_args/spec.json).
_DEFAULT_GPU_MEMORY_UTILIZATION = 0.92


def _default_batching(gpu: GpuCalibration, performance_mode: str | None) -> tuple[int, int]:
    large = gpu.memory_bytes >= _LARGE_GPU_BYTES and "a100" not in gpu.gpu.lower()
    tokens, seqs = (8192, 1024) if large else (2048, 256)
    factor = 2 if performance_mode == "throughput" else 1
    return tokens * factor, seqs * factor


def _int_arg(parsed: Mapping[str, Any], key: str) -> int | None:
    """An integer argument, or None when absent; the parser may hand over digits as a string."""
    value = parsed.get(key)
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TwinConfigError(f"{key}: expected an integer, got {value!r}")
    return value


def _first_name(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple) and value:
        return str(value[0])
    return None


def _speculative(spec: Mapping[str, Any] | None, acceptance_rate: float | None) -> SpeculativeDecoding | None:
    if not spec:
        return None
    draft_name = spec.get("model")
    method = str(spec.get("method") or ("draft_model" if draft_name else "")).lower()
    if not method:
        raise TwinConfigError("speculative_config: needs a method (e.g. eagle, ngram) or a draft model")
    k = spec.get("num_speculative_tokens")
    if not isinstance(k, int) or k < 1:
        raise TwinConfigError(
            f"speculative_config.num_speculative_tokens: must be a positive integer, got {k!r}"
        )
    draft: ModelArchitecture | None = None
    if method == "draft_model":
        if not draft_name:
            raise TwinConfigError("speculative_config.model: draft_model needs the draft model's name")
        try:
            draft = architecture_for(str(draft_name))
        except UnknownModelError as error:
            raise TwinConfigError(f"speculative_config.model: {error}") from None
    rate = (
        acceptance_rate
        if acceptance_rate is not None
        else _DEFAULT_ACCEPTANCE.get(method, _DEFAULT_ACCEPTANCE_RATE)
    )
    if not 0.0 <= rate < 1.0:
        raise TwinConfigError(f"speculative acceptance rate: must be in [0, 1), got {rate}")
    return SpeculativeDecoding(method, k, rate, draft)


def engine_config_from_vllm_args(
    parsed: Mapping[str, Any],
    *,
    gpu_product: str,
    calibration: GpuCalibration | None = None,
    spec_token_acceptance_rate: float | None = None,
    load_bytes_per_s: float | None = None,
    load_overhead_s: float | None = None,
) -> EngineConfig:
    """The twin configuration for vLLM arguments parsed by dest name (`max_num_seqs`, ...).

    `gpu_product` is the node's `nvidia.com/gpu.product` label; its shipped calibration is used
    unless `calibration` is given. `spec_token_acceptance_rate` sets the draft-token acceptance
    that vLLM cannot know in advance (defaults by method). Unknown keys are ignored; a missing
    key takes vLLM's default. Raises `TwinConfigError` naming the offending argument.
    """
    # `vllm serve MODEL` puts the model in `model_tag`; `--model` is the fallback.
    model = parsed.get("model_tag") or parsed.get("model")
    if not isinstance(model, str) or not model:
        raise TwinConfigError("model: required (the positional model tag or --model)")
    for unmodelled in ("pipeline_parallel_size", "data_parallel_size"):
        if (parsed.get(unmodelled) or 1) != 1:
            raise TwinConfigError(
                f"{unmodelled}: the twin models one engine with tensor parallelism only; got "
                f"{parsed[unmodelled]} (run one twin per data-parallel rank instead)"
            )
    try:
        architecture = architecture_for(model)
    except UnknownModelError as error:
        raise TwinConfigError(f"model: {error}") from None
    gpu = calibration if calibration is not None else load_calibration(gpu_product)
    default_tokens, default_seqs = _default_batching(gpu, parsed.get("performance_mode"))

    chunked = parsed.get("enable_chunked_prefill")
    chunked = True if chunked is None else bool(chunked)
    max_model_len = _int_arg(parsed, "max_model_len") or architecture.max_position_embeddings
    if max_model_len > architecture.max_position_embeddings:
        raise TwinConfigError(
            f"max_model_len: {max_model_len} exceeds the {architecture.max_position_embeddings} tokens "
            f"that {model} supports"
        )
    max_tokens = _int_arg(parsed, "max_num_batched_tokens")
    if max_tokens is None:
        max_tokens = default_tokens if chunked else max(max_model_len, default_tokens)
    if not chunked and max_tokens < max_model_len:
        raise TwinConfigError(
            f"max_num_batched_tokens: {max_tokens} is smaller than max_model_len {max_model_len}; without "
            "chunked prefill a whole prompt must fit in one step (raise it or enable chunked prefill)"
        )
    max_seqs = _int_arg(parsed, "max_num_seqs")
    if max_seqs is None:
        max_seqs = min(default_seqs, max_tokens)
    if max_tokens < max_seqs:
        raise TwinConfigError(
            f"max_num_batched_tokens: {max_tokens} is smaller than max_num_seqs {max_seqs}; "
            "every running request needs at least one token per step"
        )
    tp = _int_arg(parsed, "tensor_parallel_size") or 1
    if tp < 1:
        raise TwinConfigError(f"tensor_parallel_size: must be at least 1, got {tp}")
    utilization = float(parsed.get("gpu_memory_utilization") or _DEFAULT_GPU_MEMORY_UTILIZATION)
    if not 0.0 < utilization <= 1.0:
        raise TwinConfigError(f"gpu_memory_utilization: must be in (0, 1], got {utilization}")
    prefix = parsed.get("enable_prefix_caching")

    spec = parsed.get("speculative_config")
    if spec is not None and not isinstance(spec, Mapping):
        raise TwinConfigError(f"speculative_config: expected a JSON object, got {type(spec).__name__}")

    optional: dict[str, Any] = {}
    if load_bytes_per_s is not None:
        optional["load_bytes_per_s"] = load_bytes_per_s
    if load_overhead_s is not None:
        optional["load_overhead_s"] = load_overhead_s
    return EngineConfig(
        model=model,
        served_model_name=_first_name(parsed.get("served_model_name")) or model,
        architecture=architecture,
        gpu=gpu,
        tensor_parallel_size=tp,
        max_num_seqs=max_seqs,
        max_num_batched_tokens=max_tokens,
        max_model_len=max_model_len,
        enable_chunked_prefill=chunked,
        enable_prefix_caching=True if prefix is None else bool(prefix),
        gpu_memory_utilization=utilization,
        weight_format=weight_format_for(parsed.get("quantization"), model),
        kv_cache_dtype=str(parsed.get("kv_cache_dtype") or "auto"),
        block_size=_int_arg(parsed, "block_size") or 16,
        num_gpu_blocks_override=_int_arg(parsed, "num_gpu_blocks_override"),
        speculative=_speculative(spec, spec_token_acceptance_rate),
        port=_int_arg(parsed, "port") or 8000,
        **optional,
    )
