"""Memory arithmetic of one server: weight bytes, KV bytes per token, KV blocks, load time.

Everything is per GPU of the tensor-parallel group, because that is where memory runs out:
tensor parallelism splits the weights and the KV heads across the group (a model with fewer KV
heads than GPUs replicates them, as vLLM does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from thrifty.twin.architectures import ModelArchitecture
from thrifty.twin.config import EngineConfig, TwinConfigError

_GIB = 2**30
# Memory vLLM holds besides weights, activations and KV: the CUDA context, NCCL buffers and the
# captured CUDA graphs. About 1 GiB on a recent driver.
_FIXED_OVERHEAD_BYTES = 1 * _GIB
# Embedding and output head stay 16-bit under every weight-only quantization the twin models.
_HEAD_BYTES_PER_PARAM = 2


def _kv_elements_per_token_per_gpu(arch: ModelArchitecture, tp: int) -> int:
    heads_per_gpu = math.ceil(arch.num_kv_heads / tp)
    return 2 * arch.num_layers * heads_per_gpu * arch.head_dim


@dataclass(frozen=True, slots=True)
class ServerSizing:
    """Per-GPU memory figures of one server, derived from its `EngineConfig`."""

    weight_bytes_per_gpu: float
    """Bytes of weights each GPU holds and reads once per step (target, plus draft if any)."""
    kv_bytes_per_token_per_gpu: int
    """Bytes of KV one token of context occupies on each GPU (target, plus draft if any)."""
    activation_reserve_bytes: float
    """Bytes each GPU keeps for activations, sampler logits and fixed overhead."""
    kv_cache_bytes_per_gpu: float
    """Bytes each GPU gives to the KV cache."""
    num_gpu_blocks: int
    """KV blocks of `block_size` tokens: the cache's capacity."""
    block_size: int
    """Tokens per KV block."""
    load_seconds: float
    """Time from start to ready: all weights streamed at the load bandwidth, plus start-up overhead."""

    @property
    def kv_capacity_tokens(self) -> int:
        """Tokens of context the whole cache holds."""
        return self.num_gpu_blocks * self.block_size


def _draft_weight_and_kv(config: EngineConfig) -> tuple[float, int]:
    """Weight bytes and KV elements per token (per GPU) that speculative decoding adds."""
    spec = config.speculative
    tp = config.tensor_parallel_size
    if spec is None:
        return 0.0, 0
    if spec.draft is not None:
        draft = spec.draft
        params = draft.body_params + draft.head_params + draft.embedding_params
        return params * _HEAD_BYTES_PER_PARAM / tp, _kv_elements_per_token_per_gpu(draft, tp)
    if spec.uses_draft_head:
        arch = config.architecture
        # One decoder layer plus the fusing projection, sharing the target's embedding and head.
        params = arch.params_per_layer + 2 * arch.hidden_size * arch.hidden_size
        kv = 2 * math.ceil(arch.num_kv_heads / tp) * arch.head_dim
        return params * _HEAD_BYTES_PER_PARAM / tp, kv
    return 0.0, 0


def target_weight_bytes_per_gpu(config: EngineConfig) -> float:
    """Bytes of the target model's weights on each GPU of the group."""
    arch = config.architecture
    body = arch.body_params * config.weight_format.bytes_per_param
    head = (arch.head_params + arch.embedding_params) * _HEAD_BYTES_PER_PARAM
    return (body + head) / config.tensor_parallel_size


def size_server(config: EngineConfig) -> ServerSizing:
    """Per-GPU memory plan of the server, or `TwinConfigError` where vLLM would refuse to start."""
    arch = config.architecture
    tp = config.tensor_parallel_size
    draft_weights, draft_kv = _draft_weight_and_kv(config)
    weights = target_weight_bytes_per_gpu(config) + draft_weights
    kv_per_token = (_kv_elements_per_token_per_gpu(arch, tp) + draft_kv) * config.kv_bytes_per_element
    # The profiling run's peak: the gated MLP's two intermediate tensors and the residual for a
    # full token budget (twice, for input and output buffers), plus fp32 logits for a full batch.
    activations = config.max_num_batched_tokens * (arch.hidden_size + 2 * arch.intermediate_size / tp) * 2 * 2
    logits = config.max_num_seqs * arch.vocab_size * 4 / tp
    reserve = _FIXED_OVERHEAD_BYTES + activations + logits
    budget = config.gpu.memory_bytes * config.gpu_memory_utilization
    kv_bytes = budget - weights - reserve
    if kv_bytes <= 0:
        raise TwinConfigError(
            f"gpu_memory_utilization: {config.gpu_memory_utilization} of {config.gpu.gpu} "
            f"({budget / _GIB:.1f} GiB per GPU) cannot hold {weights / _GIB:.1f} GiB of weights plus "
            f"{reserve / _GIB:.1f} GiB of activations with tensor_parallel_size {tp}; use more GPUs, "
            "quantization, or a higher utilization"
        )
    block_bytes = config.block_size * kv_per_token
    blocks = config.num_gpu_blocks_override or int(kv_bytes // block_bytes)
    capacity = blocks * config.block_size
    if capacity < config.max_model_len:
        raise TwinConfigError(
            f"max_model_len: {config.max_model_len} tokens need more KV cache than the "
            f"{capacity} tokens ({kv_bytes / _GIB:.2f} GiB per GPU) left after weights; lower "
            f"--max-model-len to at most {capacity}, or raise --gpu-memory-utilization"
        )
    total_weights = weights * tp
    load = total_weights / config.load_bytes_per_s + config.load_overhead_s
    return ServerSizing(
        weight_bytes_per_gpu=weights,
        kv_bytes_per_token_per_gpu=kv_per_token,
        activation_reserve_bytes=reserve,
        kv_cache_bytes_per_gpu=kv_bytes,
        num_gpu_blocks=blocks,
        block_size=config.block_size,
        load_seconds=load,
    )
