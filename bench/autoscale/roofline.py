"""The roofline lower bound of GPU-hours for a trace: no policy can use less.

For every minute of the replay, the least GPU time that minute's tokens need on the benchmark's
engine, with perfect batching, no start-up, fractional GPUs and no SLO slack spent on queueing:

- decode: every output token is produced in a decode step of the largest batch whose pure decode
  step (at the minute's mean context) still meets the ITL SLO and fits the KV cache; the step
  time comes from the twin's roofline (`thrifty.twin.step_cost_model`);
- prefill: every prompt token costs its matmul time at full compute efficiency (the weights'
  FLOPs only, attention left out, which only lowers the bound);
- a step is memory-bound or compute-bound, so the minute needs at least the larger of the two
  totals: decode-step time, and the matmul time of all its tokens.

Sum over minutes / 3600 = GPU-hours. It ignores the prefill steps that stretch inter-token gaps,
so even a perfect autoscaler stays above it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from thrifty.twin import EngineConfig, TraceRequest, size_server, step_cost_model


def best_decode_batch(
    config: EngineConfig, context_tokens: float, itl_slo_s: float, step_time_scale: float = 1.0
) -> tuple[int, float]:
    """(batch, step seconds) of the largest decode batch within the ITL SLO and the KV cache."""
    cost = step_cost_model(config, step_time_scale)
    capacity = size_server(config).kv_capacity_tokens
    context = max(1.0, context_tokens)
    best = (
        1,
        cost.step_seconds(tokens=1, sampled=1, context_tokens=int(context), attention_pairs=int(context)),
    )
    batch = 1
    while batch <= 8192:
        total = int(batch * context)
        if total > capacity:
            break
        seconds = cost.step_seconds(tokens=batch, sampled=batch, context_tokens=total, attention_pairs=total)
        if seconds > itl_slo_s:
            break
        best = (batch, seconds)
        batch += 1 if batch < 64 else max(1, batch // 32)
    return best


def roofline_gpu_hours(
    requests: Sequence[TraceRequest], config: EngineConfig, *, itl_slo_s: float, step_time_scale: float = 1.0
) -> float:
    cost = step_cost_model(config, step_time_scale)
    prompt: defaultdict[int, int] = defaultdict(int)
    output: defaultdict[int, int] = defaultdict(int)
    context: defaultdict[int, float] = defaultdict(float)
    for request in requests:
        minute = int(request.arrival_s // 60)
        prompt[minute] += request.prompt_tokens
        output[minute] += request.output_tokens
        # Mean context over a request's decode: its prompt plus half its output, token-weighted.
        context[minute] += request.output_tokens * (request.prompt_tokens + request.output_tokens / 2)
    seconds = 0.0
    for minute, generated in output.items():
        mean_context = context[minute] / generated if generated else 0.0
        batch, step_s = best_decode_batch(config, mean_context, itl_slo_s, step_time_scale)
        decode_s = generated / batch * step_s
        compute_s = (prompt[minute] + generated) * cost.linear_s_per_token
        seconds += max(decode_s, compute_s)
    return seconds / 3600
