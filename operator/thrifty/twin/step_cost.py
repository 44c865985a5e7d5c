"""How long one engine step takes: a memory/compute roofline per kernel family, per GPU.

    t_step = c0 + pnorm_p(weight_read, matmul) + max(kv_read, attention) + all_reduce + drafting

    weight_read = W / (eta_bw * BW)                      the weight matmuls' memory time
    matmul      = (2 * P_body * tokens + 2 * P_head * sampled) / (eta_f * F_weights)
    kv_read     = sum(ctx) * k_kv / (eta_bw * BW)        attention's memory time
    attention   = 4 * layers * q_width * attention_pairs / (eta_f * F_bf16)
    pnorm_p(x, y) = (x**p + y**p) ** (1 / p)             p = `matmul_norm_exponent`, 3 on H100

W and P are per GPU under tensor parallelism (split across the group); F_weights is the fp8 peak
for fp8/int8 weights and the bf16 peak otherwise. The output head runs only for positions that
sample a token (vLLM computes logits for the last position of each request), not for every
prefill token. Attention FLOPs count every (new token, earlier token) pair of a request, QK^T and
AV at 2 FLOPs each per element: at 8k context on Llama-3.1-8B they are a quarter of the matmul
FLOPs, and without them the 16k-token prefill comes out 28% too fast.

Why this form and not DESIGN.md's one-line `c0 + max(memory, compute)`. A step runs two kinds
of kernel one after the other, and each has its own roof:

- The weight matmuls stream W and do 2P FLOPs per token. Far from the ridge one side dominates
  and the norm equals the larger; at the ridge (a few hundred tokens per step on an H100) the
  kernels reach neither roof at once, and the p-norm charges up to 2**(1/p) times the larger,
  where `max()` charged exactly the larger.
- Attention streams the KV cache (decode) or does S^2 FLOPs (long prefills). It runs after the
  matmuls of its layer, so its time adds to theirs instead of hiding under the weight read.

The evidence is bench/twin (`h100-measurements.json`, 52 CUDA-graph timings of a
Llama-3.1-8B-shaped bf16 model on one H100; `fit.py` fits both forms; README.md has every point).
Error of the twin against the measurement, each form with its own least-squares coefficients
(before: c0 0.156 ms, eta_bw 0.762, eta_f 0.5405; now: 0.050 ms, 0.758, 0.545, p = 3):

    point                       one max() (before)   this form, p = 3 (now)
    prefill 1 x 256 tokens             -24.0%               -8.9%
    decode batch 256, ctx 512          -20.3%               -7.3%
    decode batch 256, ctx 1024         -16.5%               -7.3%
    prefill 1 x 128 tokens             -10.4%               -7.3%
    prefill 1 x 16384 tokens            -9.1%               -9.9%
    decode batch 16, ctx 8192           +9.0%               +8.7%
    largest of 52 / rms                24.0% / 6.4%         9.9% / 3.9%

The exponent comes from the same fit: of p = 1.5 .. 4, p = 3 has the smallest largest error
(p = 2 has the smallest rms, 2.9%, but reaches -11.4% at the 16k prefill; p = 1, plain
addition, fitted the same way, reaches +29% at the 256-token prefill).

Tensor parallelism adds two all-reduces per layer (after attention and after the MLP) of the
step's activations: a fixed latency each plus a ring's 2(tp-1)/tp of the bytes over the
interconnect. Speculative decoding adds k draft passes per step while any request decodes, each
reading the draft's weights (a draft model, or one layer plus the output head for EAGLE-style
heads) with a quarter of c0 as its launch overhead; n-gram drafting is free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from thrifty.twin.config import EngineConfig
from thrifty.twin.sizing import target_weight_bytes_per_gpu

_ACTIVATION_BYTES = 2
_DRAFT_PASS_OVERHEAD_OF_C0 = 0.25


@dataclass(frozen=True, slots=True)
class StepCostModel:
    """Seconds per unit of each step-time term, precomputed for one server configuration."""

    c0_s: float
    """Fixed seconds per step."""
    weight_read_s: float
    """Seconds to stream one GPU's target weights once: the weight matmuls' memory time."""
    kv_read_s_per_token: float
    """Seconds to stream one token of context's KV on one GPU: attention's memory time."""
    linear_s_per_token: float
    """Matmul seconds per computed token through the decoder layers."""
    head_s_per_sample: float
    """Matmul seconds per position whose logits are computed."""
    attention_s_per_pair: float
    """Attention seconds per (new token, context token) pair."""
    matmul_norm_exponent: float
    """p of the p-norm that blends the weight matmuls' memory and compute times (1: their sum)."""
    allreduce_fixed_s: float
    """All-reduce latency per step (zero without tensor parallelism)."""
    allreduce_s_per_token: float
    """All-reduce transfer seconds per computed token."""
    draft_fixed_s: float
    """Drafting seconds per step in which some request decodes (all k passes)."""
    draft_s_per_context_token: float
    """Drafting seconds per context token of the batch (the draft model's own KV reads)."""
    _weight_read_powered: float = field(init=False, repr=False)
    _inverse_exponent: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # step_seconds runs millions of times per replayed hour: take the constant powers once.
        p = self.matmul_norm_exponent
        object.__setattr__(self, "_weight_read_powered", self.weight_read_s**p)
        object.__setattr__(self, "_inverse_exponent", 1 / p)

    def step_seconds(
        self,
        *,
        tokens: int,
        sampled: int,
        context_tokens: int,
        attention_pairs: int,
        decoding: int = 0,
    ) -> float:
        """Duration of one step that computes `tokens` tokens.

        `sampled`: positions that produce logits; `context_tokens`: KV tokens read (every scheduled
        request's context including its new tokens); `attention_pairs`: sum over new tokens of the
        context each attends to; `decoding`: requests in their decode phase (for drafting).
        """
        matmul = self.linear_s_per_token * tokens + self.head_s_per_sample * sampled
        kv_read = self.kv_read_s_per_token * context_tokens
        attention = self.attention_s_per_pair * attention_pairs
        # Positive bases, so the powers are real (typeshed types float ** float as Any).
        weight_matmuls: float = (
            self._weight_read_powered + matmul**self.matmul_norm_exponent
        ) ** self._inverse_exponent
        seconds = self.c0_s + weight_matmuls + (kv_read if kv_read > attention else attention)
        seconds += self.allreduce_fixed_s + self.allreduce_s_per_token * tokens
        if decoding:
            seconds += self.draft_fixed_s + self.draft_s_per_context_token * context_tokens
        return seconds

    def scaled(self, factor: float) -> StepCostModel:
        """The same engine `factor` times as slow: every term is linear in its coefficients (the
        p-norm too), so scaling them all scales every step's duration by exactly `factor`."""
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"step_time_scale: must be a positive number, got {factor!r}")
        if factor == 1.0:
            return self
        return StepCostModel(
            c0_s=self.c0_s * factor,
            weight_read_s=self.weight_read_s * factor,
            kv_read_s_per_token=self.kv_read_s_per_token * factor,
            linear_s_per_token=self.linear_s_per_token * factor,
            head_s_per_sample=self.head_s_per_sample * factor,
            attention_s_per_pair=self.attention_s_per_pair * factor,
            matmul_norm_exponent=self.matmul_norm_exponent,
            allreduce_fixed_s=self.allreduce_fixed_s * factor,
            allreduce_s_per_token=self.allreduce_s_per_token * factor,
            draft_fixed_s=self.draft_fixed_s * factor,
            draft_s_per_context_token=self.draft_s_per_context_token * factor,
        )


def _target_kv_bytes_per_token_per_gpu(config: EngineConfig) -> float:
    arch = config.architecture
    heads = math.ceil(arch.num_kv_heads / config.tensor_parallel_size)
    return 2 * arch.num_layers * heads * arch.head_dim * config.kv_bytes_per_element


def step_cost_model(config: EngineConfig, step_time_scale: float = 1.0) -> StepCostModel:
    """The step-time coefficients of one server configuration; `step_time_scale` > 1 plays an
    engine that runs that many times slower than the calibration (1.3: 30% slower)."""
    gpu = config.gpu
    arch = config.architecture
    tp = config.tensor_parallel_size
    bandwidth = gpu.eta_bw * gpu.bandwidth_bytes_per_s
    bf16 = gpu.eta_f * gpu.flops_bf16
    weights_flops = gpu.eta_f * (gpu.flops_fp8 if config.weight_format.uses_fp8_flops else gpu.flops_bf16)
    q_width = arch.num_attention_heads * arch.head_dim

    allreduce_fixed = allreduce_per_token = 0.0
    if tp > 1:
        reductions = 2 * arch.num_layers
        allreduce_fixed = reductions * gpu.allreduce_latency_s
        ring_bytes = 2 * (tp - 1) / tp * arch.hidden_size * _ACTIVATION_BYTES
        allreduce_per_token = reductions * ring_bytes / gpu.interconnect_bytes_per_s

    draft_fixed = draft_per_context = 0.0
    spec = config.speculative
    if spec is not None and (spec.draft is not None or spec.uses_draft_head):
        if spec.draft is not None:
            draft = spec.draft
            pass_bytes = (draft.body_params + draft.head_params + draft.embedding_params) * 2 / tp
            kv_per_token = 2 * draft.num_layers * math.ceil(draft.num_kv_heads / tp) * draft.head_dim
        else:
            pass_bytes = (arch.params_per_layer + 2 * arch.hidden_size**2 + arch.head_params) * 2 / tp
            kv_per_token = 2 * math.ceil(arch.num_kv_heads / tp) * arch.head_dim
        kv_bytes = kv_per_token * config.kv_bytes_per_element
        passes = spec.num_speculative_tokens
        draft_fixed = passes * (_DRAFT_PASS_OVERHEAD_OF_C0 * gpu.c0_s + pass_bytes / bandwidth)
        draft_per_context = passes * kv_bytes / bandwidth

    return StepCostModel(
        c0_s=gpu.c0_s,
        weight_read_s=target_weight_bytes_per_gpu(config) / bandwidth,
        kv_read_s_per_token=_target_kv_bytes_per_token_per_gpu(config) / bandwidth,
        linear_s_per_token=2 * arch.body_params / tp / weights_flops,
        head_s_per_sample=2 * arch.head_params / tp / bf16,
        attention_s_per_pair=4 * arch.num_layers * q_width / tp / bf16,
        matmul_norm_exponent=gpu.matmul_norm_exponent,
        allreduce_fixed_s=allreduce_fixed,
        allreduce_s_per_token=allreduce_per_token,
        draft_fixed_s=draft_fixed,
        draft_s_per_context_token=draft_per_context,
    ).scaled(step_time_scale)
