"""The vLLM command line for a model: every flag derived from the typed spec, then extraArgs.

Every argument is checked against the pinned vLLM's own argument spec (thrifty.vllm_args), so a
flag the engine would refuse at start-up is caught here, before any pod is touched.
"""

from __future__ import annotations

import json
from typing import Any

from thrifty.api import InferenceModel, split_source
from thrifty.api.quantization import VLLM_QUANTIZATION
from thrifty.vllm_args import validate_engine_args

ENGINE_PORT = 8000
# Where a pvc:// source's claim is mounted, read-only.
PVC_MOUNT = "/models/pvc"


def model_path(source: str) -> str:
    """What vLLM gets as the model: a Hub repo id, a path on the mounted claim, or the S3 URI."""
    parts = split_source(source)
    if parts.scheme == "hf":
        return parts.name
    if parts.scheme == "pvc":
        return f"{PVC_MOUNT}/{parts.path}".rstrip("/")
    return source


def _flag(name: str, enabled: bool | None) -> list[str]:
    """A vLLM boolean flag: unset leaves vLLM's own default, False is spelled --no-NAME."""
    if enabled is None:
        return []
    return [f"--{name}" if enabled else f"--no-{name}"]


def _speculative_config(model: InferenceModel) -> dict[str, Any] | None:
    speculative = model.spec.speculative
    if speculative is None:
        return None
    config: dict[str, Any] = {"method": speculative.vllm_method}
    if speculative.num_speculative_tokens is not None:
        config["num_speculative_tokens"] = speculative.num_speculative_tokens
    if speculative.draft_model is not None:
        config["model"] = model_path(speculative.draft_model.source)
    if speculative.eagle_head is not None:
        config["model"] = model_path(speculative.eagle_head.source)
    if speculative.ngram is not None:
        if speculative.ngram.prompt_lookup_min is not None:
            config["prompt_lookup_min"] = speculative.ngram.prompt_lookup_min
        if speculative.ngram.prompt_lookup_max is not None:
            config["prompt_lookup_max"] = speculative.ngram.prompt_lookup_max
    return config


def engine_args(
    model: InferenceModel, *, max_num_seqs: int | None = None, max_num_batched_tokens: int | None = None
) -> list[str]:
    """The arguments of `vllm serve` for ``model``.

    ``max_num_seqs`` overrides spec.batching.maxNumSeqs, and ``max_num_batched_tokens`` an unset
    spec.batching.maxNumBatchedTokens: the control loop moves the engine's batch limits by a
    rolling update without ever writing the user's spec.
    """
    spec = model.spec
    args = [model_path(spec.model.source), "--served-model-name", model.served_name]
    args += ["--host", "0.0.0.0", "--port", str(ENGINE_PORT)]
    if spec.model.revision is not None:
        args += ["--revision", spec.model.revision]
    if spec.model.max_model_len is not None:
        args += ["--max-model-len", str(spec.model.max_model_len)]
    if spec.model.scheme == "s3":
        args += ["--load-format", "runai_streamer"]
    quantization = VLLM_QUANTIZATION[spec.quantization.method]
    if quantization is not None:
        args += ["--quantization", quantization]
    if spec.quantization.kv_cache_dtype != "auto":
        args += ["--kv-cache-dtype", spec.quantization.kv_cache_dtype]
    speculative = _speculative_config(model)
    if speculative is not None:
        args += ["--speculative-config", json.dumps(speculative, sort_keys=True, separators=(",", ":"))]
    batching = spec.batching
    args += ["--max-num-seqs", str(max_num_seqs if max_num_seqs is not None else batching.max_num_seqs)]
    tokens = batching.max_num_batched_tokens or max_num_batched_tokens
    if tokens is not None:
        args += ["--max-num-batched-tokens", str(tokens)]
    args += _flag("enable-chunked-prefill", batching.chunked_prefill)
    args += _flag("enable-prefix-caching", batching.prefix_caching)
    if batching.gpu_memory_utilization is not None:
        args += ["--gpu-memory-utilization", str(batching.gpu_memory_utilization)]
    tensor_parallel = spec.resources.effective_tensor_parallel_size
    args += ["--tensor-parallel-size", str(tensor_parallel)]
    data_parallel = model.gpu_count // tensor_parallel
    if data_parallel > 1:
        args += ["--data-parallel-size", str(data_parallel)]
    args += list(spec.engine.extra_args)
    validate_engine_args(args)
    return args
