"""Time the engine steps of a Llama-3.1-8B-shaped decoder on one GPU, to calibrate the twin's roofline.

Runs on the GPU machine (PyTorch with CUDA), not in CI. The model has Llama-3.1-8B's exact shapes
(32 layers, hidden 4096, 32 query / 8 KV heads of 128, MLP 14336, vocab 128256) and random bf16 weights,
so every step moves the same bytes and does the same matrix work as the real model; the numbers it
produces do not depend on the weights' values.

What is timed, each as one CUDA-graph replay (as vLLM replays captured graphs for decode):

- decode steps: `batch` sequences each append one token to a KV cache of `context` tokens, and attention
  reads the whole cache of every sequence in every layer; logits for every sequence, then argmax;
- prefill passes: `tokens` prompt tokens in one forward pass, either one sequence or many short ones,
  causal attention, KV written to the cache, logits only for each sequence's last token (as vLLM does);
- ceilings for reference: a device-to-device copy, a plain read and a large bf16 matrix product.

Decode attention packs the 4 query heads that share a KV head as 4 query rows against that head's cache,
so the cache is read exactly once per step (what vLLM's attention kernels do). vLLM's kernels also split a
long cache across multiprocessors when the batch is small (flash decoding); in case PyTorch's flash kernel
does not, this script also splits the cache into chunks, merges them by their log-sum-exp, and keeps per
shape the split count that is fastest (recorded; on the H100 the unsplit kernel won at every shape). Both
attention forms are checked against a float32 reference first.

Two variants of the non-attention work are timed: "compiled" fuses norms, residual adds, RoPE and
SiLU-and-mul with torch.compile as vLLM does (the figures to calibrate on), and "eager" runs the plain
PyTorch ops (one kernel each), kept as a same-run baseline.

Usage (on the GPU machine):  python3 bench/twin/calibrate_h100.py --out $OUT/h100-measurements.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

HIDDEN = 4096
LAYERS = 32
Q_HEADS = 32
KV_HEADS = 8
HEAD_DIM = 128
GROUP = Q_HEADS // KV_HEADS
MLP = 14336
VOCAB = 128256
ROPE_THETA = 500000.0
DTYPE = torch.bfloat16
BYTES = 2
KV_BYTES_PER_TOKEN_PER_LAYER = 2 * KV_HEADS * HEAD_DIM * BYTES
KV_BYTES_PER_TOKEN = LAYERS * KV_BYTES_PER_TOKEN_PER_LAYER  # 131072 for this model

DECODE_BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256]
DECODE_CONTEXTS = [512, 1024, 2048, 4096, 8192]
PREFILL_SINGLE = [128, 256, 512, 1024, 2048, 4096, 8192, 16384]
# Many short prompts in one pass: the same token counts as 512-token sequences.
PREFILL_MANY_SEQ_LEN = 512
PREFILL_MANY = [1024, 2048, 4096, 8192, 16384]
SPLIT_CANDIDATES = [1, 2, 4, 8, 16, 32]
# Room kept free beside the weights and the KV cache for activations, graph pools and cuBLAS workspaces.
ACTIVATION_RESERVE_BYTES = 8 * 1024**3


def log(message: str) -> None:
    print(message, flush=True)


class Decoder:
    """Random bf16 weights in Llama-3.1-8B's shapes, fused the way vLLM fuses them (QKV, gate+up)."""

    def __init__(self, device: torch.device) -> None:
        def weight(*shape: int) -> torch.Tensor:
            tensor = torch.empty(*shape, dtype=DTYPE, device=device)
            # Small values keep activations finite through 32 layers; values do not change the timing.
            return tensor.normal_(0.0, 0.02)

        def norm() -> torch.Tensor:
            return torch.ones(HIDDEN, dtype=DTYPE, device=device)

        self.embed = weight(VOCAB, HIDDEN)
        self.layers = [
            {
                "attn_norm": norm(),
                "qkv": weight(HIDDEN + 2 * KV_HEADS * HEAD_DIM, HIDDEN),
                "o": weight(HIDDEN, HIDDEN),
                "mlp_norm": norm(),
                "gate_up": weight(2 * MLP, HIDDEN),
                "down": weight(HIDDEN, MLP),
            }
            for _ in range(LAYERS)
        ]
        self.final_norm = norm()
        self.lm_head = weight(VOCAB, HIDDEN)
        self.weight_bytes = sum(
            t.numel() * t.element_size()
            for t in [self.embed, self.final_norm, self.lm_head]
            + [t for layer in self.layers for t in layer.values()]
        )
        self.parameters = self.weight_bytes // BYTES


def rope_tables(positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = 1.0 / ROPE_THETA ** (
        torch.arange(0, HEAD_DIM, 2, device=positions.device, dtype=torch.float32) / HEAD_DIM
    )
    angles = positions.float()[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().to(DTYPE), angles.sin().to(DTYPE)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = HEAD_DIM // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


def decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, splits: int) -> torch.Tensor:
    """q: (B, KV_HEADS, GROUP, D); k, v: (B, KV_HEADS, L, D) -> (B, KV_HEADS, GROUP, D).

    With splits > 1 the cache is cut into `splits` chunks handled as extra heads, and the partial outputs
    are merged with weights softmax(lse) over the chunks, which is exact.
    """
    if splits == 1:
        return F.scaled_dot_product_attention(q, k, v)
    batch, heads, group, dim = q.shape
    length = k.shape[2]
    k_chunks = k.view(batch, heads * splits, length // splits, dim)
    v_chunks = v.view(batch, heads * splits, length // splits, dim)
    q_chunks = (
        q.unsqueeze(2).expand(batch, heads, splits, group, dim).reshape(batch, heads * splits, group, dim)
    )
    result = torch.ops.aten._scaled_dot_product_flash_attention(q_chunks, k_chunks, v_chunks)
    out, lse = result[0], result[1]
    out = out.reshape(batch, heads, splits, group, dim).float()
    lse = lse[:, :, :group].reshape(batch, heads, splits, group)
    weights = torch.softmax(lse, dim=2)
    return (out * weights.unsqueeze(-1)).sum(dim=2).to(q.dtype)


# Whether SDPA's flash kernel takes GQA shapes directly (enable_gqa); main() turns it off if not.
native_gqa = True


def prefill_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal attention; q: (N, Q_HEADS, S, D), k, v: (N, KV_HEADS, S, D)."""
    if native_gqa:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    k = k.repeat_interleave(GROUP, dim=1)
    v = v.repeat_interleave(GROUP, dim=1)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def attention_inputs(
    x: torch.Tensor, attn_norm: torch.Tensor, qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x: (T, HIDDEN); cos, sin: (T, 1, HEAD_DIM) -> q (T, Q_HEADS, D), k and v (T, KV_HEADS, D)."""
    tokens = x.shape[0]
    h = F.rms_norm(x, (HIDDEN,), attn_norm, eps=1e-5)
    q, k, v = F.linear(h, qkv).split([HIDDEN, KV_HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM], dim=-1)
    q = apply_rope(q.reshape(tokens, Q_HEADS, HEAD_DIM), cos, sin)
    k = apply_rope(k.reshape(tokens, KV_HEADS, HEAD_DIM), cos, sin)
    return q, k, v.reshape(tokens, KV_HEADS, HEAD_DIM)


def layer_output(
    x: torch.Tensor,
    attn: torch.Tensor,
    o: torch.Tensor,
    mlp_norm: torch.Tensor,
    gate_up: torch.Tensor,
    down: torch.Tensor,
) -> torch.Tensor:
    """Output projection, residual, MLP block and its residual; x and attn are (T, HIDDEN)."""
    x = x + F.linear(attn, o)
    h = F.rms_norm(x, (HIDDEN,), mlp_norm, eps=1e-5)
    gate, up = F.linear(h, gate_up).chunk(2, dim=-1)
    return x + F.linear(F.silu(gate) * up, down)


def sample(x: torch.Tensor, final_norm: torch.Tensor, lm_head: torch.Tensor) -> torch.Tensor:
    x = F.rms_norm(x, (HIDDEN,), final_norm, eps=1e-5)
    return F.linear(x, lm_head).argmax(dim=-1)


class Kernels:
    """The non-attention parts of a layer, run eagerly or fused by torch.compile.

    vLLM compiles these parts (fusing the norms, residual adds, RoPE and SiLU-and-mul into few kernels)
    and leaves attention to its own kernels; the compiled variant imitates that. Token counts are
    dynamic, so one compilation serves every batch size and prompt length.
    """

    def __init__(self, variant: str) -> None:
        self.variant = variant
        if variant == "compiled":
            self.attention_inputs = torch.compile(attention_inputs, dynamic=True, fullgraph=True)
            self.layer_output = torch.compile(layer_output, dynamic=True, fullgraph=True)
            self.sample = torch.compile(sample, dynamic=True, fullgraph=True)
        else:
            self.attention_inputs = attention_inputs
            self.layer_output = layer_output
            self.sample = sample


class KVPool:
    """One preallocated, randomly filled KV cache per layer; shapes are carved out as views."""

    def __init__(self, tokens: int, device: torch.device) -> None:
        self.tokens = tokens
        per_layer = tokens * KV_HEADS * HEAD_DIM
        self.layers = [torch.empty(2, per_layer, dtype=DTYPE, device=device).normal_() for _ in range(LAYERS)]

    def views(self, layer: int, sequences: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        size = sequences * length * KV_HEADS * HEAD_DIM
        store = self.layers[layer]
        shape = (sequences, KV_HEADS, length, HEAD_DIM)
        return store[0, :size].view(shape), store[1, :size].view(shape)


def decode_step_fn(
    model: Decoder,
    kernels: Kernels,
    pool: KVPool,
    batch: int,
    context: int,
    splits: int,
    device: torch.device,
) -> Callable[[], torch.Tensor]:
    tokens = torch.randint(0, VOCAB, (batch,), device=device)
    cos, sin = rope_tables(torch.full((batch,), context - 1, device=device))
    cos, sin = cos[:, None, :], sin[:, None, :]
    caches = [pool.views(layer, batch, context) for layer in range(LAYERS)]

    def step() -> torch.Tensor:
        x = F.embedding(tokens, model.embed)
        for w, (k_cache, v_cache) in zip(model.layers, caches, strict=True):
            q, k, v = kernels.attention_inputs(x, w["attn_norm"], w["qkv"], cos, sin)
            k_cache[:, :, context - 1, :] = k
            v_cache[:, :, context - 1, :] = v
            attn = decode_attention(q.reshape(batch, KV_HEADS, GROUP, HEAD_DIM), k_cache, v_cache, splits)
            x = kernels.layer_output(
                x, attn.reshape(batch, HIDDEN), w["o"], w["mlp_norm"], w["gate_up"], w["down"]
            )
        return kernels.sample(x, model.final_norm, model.lm_head)

    return step


def attention_only_fn(
    pool: KVPool, batch: int, context: int, splits: int, device: torch.device
) -> Callable[[], torch.Tensor]:
    q = torch.randn(batch, KV_HEADS, GROUP, HEAD_DIM, dtype=DTYPE, device=device)
    caches = [pool.views(layer, batch, context) for layer in range(LAYERS)]

    def run() -> torch.Tensor:
        out = q
        for k_cache, v_cache in caches:
            out = decode_attention(q, k_cache, v_cache, splits)
        return out

    return run


def prefill_fn(
    model: Decoder, kernels: Kernels, pool: KVPool, sequences: int, seq_len: int, device: torch.device
) -> Callable[[], torch.Tensor]:
    total = sequences * seq_len
    tokens = torch.randint(0, VOCAB, (total,), device=device)
    cos, sin = rope_tables(torch.arange(seq_len, device=device).repeat(sequences))
    cos, sin = cos[:, None, :], sin[:, None, :]
    caches = [pool.views(layer, sequences, seq_len) for layer in range(LAYERS)]
    last_rows = torch.arange(seq_len - 1, total, seq_len, device=device)

    def step() -> torch.Tensor:
        x = F.embedding(tokens, model.embed)
        for w, (k_cache, v_cache) in zip(model.layers, caches, strict=True):
            q, k, v = kernels.attention_inputs(x, w["attn_norm"], w["qkv"], cos, sin)
            # The KV-cache write vLLM does in every prefill; attention then reads the cache layout.
            k_cache.copy_(k.reshape(sequences, seq_len, KV_HEADS, HEAD_DIM).transpose(1, 2))
            v_cache.copy_(v.reshape(sequences, seq_len, KV_HEADS, HEAD_DIM).transpose(1, 2))
            q = q.reshape(sequences, seq_len, Q_HEADS, HEAD_DIM).transpose(1, 2)
            attn = prefill_attention(q, k_cache, v_cache).transpose(1, 2).reshape(total, HIDDEN)
            x = kernels.layer_output(x, attn, w["o"], w["mlp_norm"], w["gate_up"], w["down"])
        return kernels.sample(x.index_select(0, last_rows), model.final_norm, model.lm_head)

    return step


def sweep_splits(pool: KVPool, batch: int, context: int, device: torch.device) -> dict[str, float]:
    """Attention time of one step (all layers) for each usable split count of the KV sequence."""
    attention_ms: dict[str, float] = {}
    for splits in SPLIT_CANDIDATES:
        if context // splits < 128 or batch * KV_HEADS * splits > 2048:
            continue
        try:
            fn = attention_only_fn(pool, batch, context, splits, device)
            attention_ms[str(splits)] = statistics.median(time_replays(fn, reps=10, warmup=2))
        except RuntimeError as exc:
            log(f"attention B={batch} ctx={context} splits={splits} failed: {exc!s:.200}")
    return attention_ms


def time_replays(fn: Callable[[], Any], reps: int, warmup: int = 3) -> list[float]:
    """Capture fn in a CUDA graph, replay it back to back and return each replay's time in ms."""
    fn()  # eager run first: loads kernels and picks cuBLAS algorithms outside the capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    for _ in range(warmup):
        graph.replay()
    torch.cuda.synchronize()
    events = [
        (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)
    ]
    for start, end in events:
        start.record()
        graph.replay()
        end.record()
    torch.cuda.synchronize()
    times = [start.elapsed_time(end) for start, end in events]
    del graph
    return times


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.float() - ref).norm() / ref.norm())


def check_decode_attention(device: torch.device, splits: int) -> float:
    """Relative error of one decode form against float32 math, on fresh random inputs."""
    batch, length = 3, 1024
    q = torch.randn(batch, KV_HEADS, GROUP, HEAD_DIM, dtype=DTYPE, device=device)
    k = torch.randn(batch, KV_HEADS, length, HEAD_DIM, dtype=DTYPE, device=device)
    v = torch.randn(batch, KV_HEADS, length, HEAD_DIM, dtype=DTYPE, device=device)
    scores = (q.float() @ k.float().transpose(-1, -2)) / math.sqrt(HEAD_DIM)
    ref = scores.softmax(dim=-1) @ v.float()
    return relative_error(decode_attention(q, k, v, splits), ref)


def check_prefill_attention(device: torch.device) -> float:
    """Relative error of causal GQA prefill attention against float32 math, on fresh random inputs."""
    seq = 300
    q = torch.randn(2, Q_HEADS, seq, HEAD_DIM, dtype=DTYPE, device=device)
    k = torch.randn(2, KV_HEADS, seq, HEAD_DIM, dtype=DTYPE, device=device)
    v = torch.randn(2, KV_HEADS, seq, HEAD_DIM, dtype=DTYPE, device=device)
    kx, vx = k.float().repeat_interleave(GROUP, dim=1), v.float().repeat_interleave(GROUP, dim=1)
    mask = torch.ones(seq, seq, dtype=torch.bool, device=device).tril()
    scores = (q.float() @ kx.transpose(-1, -2)) / math.sqrt(HEAD_DIM)
    ref = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1) @ vx
    return relative_error(prefill_attention(q, k, v), ref)


def measure_ceilings(device: torch.device) -> dict[str, float]:
    """What the card reaches on plain copies, plain reads and one large matrix product."""
    elements = 2 * 2**30 // BYTES
    src = torch.empty(elements, dtype=DTYPE, device=device).normal_()
    dst = torch.empty_like(src)
    copy_ms = statistics.median(time_replays(lambda: dst.copy_(src), reps=20))
    read_ms = statistics.median(
        time_replays(lambda: src.view(-1, 4096).sum(dim=0, dtype=torch.float32), reps=20)
    )
    n = 8192
    a = torch.randn(n, n, dtype=DTYPE, device=device)
    b = torch.randn(n, n, dtype=DTYPE, device=device)
    mm_ms = statistics.median(time_replays(lambda: a @ b, reps=20))
    return {
        "copy_bytes_per_s_read_plus_write": 2 * elements * BYTES / (copy_ms / 1e3),
        "read_bytes_per_s": elements * BYTES / (read_ms / 1e3),
        "matmul_8192_bf16_flops_per_s": 2 * n**3 / (mm_ms / 1e3),
    }


def summary(times: list[float]) -> dict[str, Any]:
    return {
        "step_ms_median": statistics.median(times),
        "step_ms_min": min(times),
        "step_ms_max": max(times),
        "step_ms_all": [round(t, 5) for t in times],
    }


def main() -> int:
    global native_gqa
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", required=True, help="path of the raw JSON written (rewritten after each point)"
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["compiled", "eager"],
        choices=["compiled", "eager"],
        help="compiled: non-attention parts fused by torch.compile (closest to vLLM); eager: plain ops",
    )
    parser.add_argument("--decode-reps", type=int, default=30)
    parser.add_argument("--prefill-reps", type=int, default=10)
    args = parser.parse_args()

    device = torch.device("cuda")
    props = torch.cuda.get_device_properties(device)
    started = time.time()
    doc: dict[str, Any] = {
        "meta": {
            "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "gpu_name": props.name,
            "multiprocessors": props.multi_processor_count,
            "gpu_memory_bytes": props.total_memory,
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "python": sys.version.split()[0],
            "nvidia_smi": os.environ.get("NVIDIA_SMI_SNAPSHOT", ""),
            "model": {
                "shape": "Llama-3.1-8B",
                "layers": LAYERS,
                "hidden": HIDDEN,
                "q_heads": Q_HEADS,
                "kv_heads": KV_HEADS,
                "head_dim": HEAD_DIM,
                "mlp": MLP,
                "vocab": VOCAB,
                "dtype": "bfloat16",
                "kv_bytes_per_token": KV_BYTES_PER_TOKEN,
            },
            "method": "CUDA-graph replays timed with CUDA events, back to back; median reported",
        },
        "decode": [],
        "prefill": [],
    }

    def save() -> None:
        doc["meta"]["elapsed_s"] = round(time.time() - started, 1)
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1)

    log(
        f"gpu {props.name}, {props.multi_processor_count} SMs, {props.total_memory / 2**30:.1f} GiB; torch {torch.__version__}"
    )
    torch.manual_seed(0)
    from torch.nn.attention import SDPBackend, sdpa_kernel

    errors: dict[str, float] = {}
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        errors["decode_unsplit"] = check_decode_attention(device, 1)
        try:
            errors["decode_split_8"] = check_decode_attention(device, 8)
        except (RuntimeError, TypeError, IndexError) as exc:
            log(f"split-KV decode attention failed ({exc!s:.300}); decode uses the unsplit kernel only")
            SPLIT_CANDIDATES[:] = [1]
        try:
            errors["prefill_causal_gqa"] = check_prefill_attention(device)
        except RuntimeError as exc:
            log(f"native GQA with flash failed ({exc!s:.300}); expanding K/V for prefill instead")
            native_gqa = False
            errors["prefill_causal_gqa"] = check_prefill_attention(device)
    doc["meta"]["prefill_gqa"] = "native enable_gqa" if native_gqa else "expanded K/V"
    doc["meta"]["decode_split_candidates"] = list(SPLIT_CANDIDATES)
    doc["meta"]["attention_check_rel_error_vs_fp32"] = errors
    log(f"attention check, relative error vs float32: {errors}")
    if any(not (e < 2e-2) for e in errors.values()):
        log("attention check failed; stopping")
        save()
        return 1

    doc["meta"]["ceilings"] = measure_ceilings(device)
    log(f"ceilings: {doc['meta']['ceilings']}")
    torch.cuda.empty_cache()
    save()

    model = Decoder(device)
    doc["meta"]["weight_bytes"] = model.weight_bytes
    doc["meta"]["parameters"] = model.parameters
    free, _ = torch.cuda.mem_get_info()
    capacity = (free - ACTIVATION_RESERVE_BYTES) // KV_BYTES_PER_TOKEN
    wanted = [b * c for b in DECODE_BATCHES for c in DECODE_CONTEXTS] + PREFILL_SINGLE + PREFILL_MANY
    pool_tokens = max(t for t in wanted if t <= capacity)
    doc["meta"]["kv_capacity_tokens"] = int(capacity)
    doc["meta"]["kv_pool_tokens"] = int(pool_tokens)
    log(f"weights {model.weight_bytes / 1e9:.2f} GB; room for {capacity} KV tokens; pool of {pool_tokens}")
    pool = KVPool(pool_tokens, device)
    torch.cuda.synchronize()
    save()

    splits_by_shape: dict[tuple[int, int], int] = {}
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        for variant in args.variants:
            kernels = Kernels(variant)
            for context in DECODE_CONTEXTS:
                for batch in DECODE_BATCHES:
                    point: dict[str, Any] = {"variant": variant, "batch": batch, "context": context}
                    doc["decode"].append(point)
                    if batch * context > pool_tokens:
                        point["status"] = "skipped"
                        point["reason"] = (
                            f"KV cache of {batch * context} tokens "
                            f"({batch * context * KV_BYTES_PER_TOKEN / 1e9:.1f} GB)"
                            f" does not fit beside the weights (room for {capacity} tokens)"
                        )
                        continue
                    try:
                        if (batch, context) not in splits_by_shape:
                            attention_ms = sweep_splits(pool, batch, context, device)
                            point["attention_ms_all_layers_by_splits"] = attention_ms
                            splits_by_shape[batch, context] = int(
                                min(attention_ms, key=attention_ms.__getitem__)
                            )
                        splits = splits_by_shape[batch, context]
                        point["splits_used"] = splits
                        step = decode_step_fn(model, kernels, pool, batch, context, splits, device)
                        point.update(summary(time_replays(step, reps=args.decode_reps)))
                        point["status"] = "ok"
                        log(
                            f"{variant} decode B={batch:3d} ctx={context:5d}: "
                            f"step {point['step_ms_median']:7.3f} ms (attention split {splits})"
                        )
                    except Exception as exc:  # one broken point must not lose the others
                        point["status"] = "skipped"
                        point["reason"] = f"{type(exc).__name__}: {exc!s:.300}"
                        log(f"{variant} decode B={batch} ctx={context}: {point['reason']}")
                    torch.cuda.empty_cache()
                    save()

            shapes = [(1, n) for n in PREFILL_SINGLE] + [
                (n // PREFILL_MANY_SEQ_LEN, PREFILL_MANY_SEQ_LEN) for n in PREFILL_MANY
            ]
            for sequences, seq_len in shapes:
                point = {
                    "variant": variant,
                    "tokens": sequences * seq_len,
                    "sequences": sequences,
                    "seq_len": seq_len,
                }
                doc["prefill"].append(point)
                try:
                    step = prefill_fn(model, kernels, pool, sequences, seq_len, device)
                    point.update(summary(time_replays(step, reps=args.prefill_reps)))
                    point["status"] = "ok"
                    log(f"{variant} prefill {sequences:3d} x {seq_len:5d}: {point['step_ms_median']:8.3f} ms")
                except Exception as exc:  # one broken point must not lose the others
                    point["status"] = "skipped"
                    point["reason"] = f"{type(exc).__name__}: {exc!s:.300}"
                    log(f"{variant} prefill {sequences} x {seq_len}: {point['reason']}")
                torch.cuda.empty_cache()
                save()

    for variant in args.variants:
        log(f"\n{variant}: decode step median, ms (rows: batch; columns: context)")
        log("batch " + "".join(f"{c:>9d}" for c in DECODE_CONTEXTS))
        for batch in DECODE_BATCHES:
            cells = []
            for context in DECODE_CONTEXTS:
                match = [
                    p
                    for p in doc["decode"]
                    if p["variant"] == variant and p["batch"] == batch and p["context"] == context
                ]
                ok = match and match[0].get("status") == "ok"
                cells.append(f"{match[0]['step_ms_median']:9.3f}" if ok else "        -")
            log(f"{batch:5d} " + "".join(cells))
    save()
    log(f"done in {time.time() - started:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
