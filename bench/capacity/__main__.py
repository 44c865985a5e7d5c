"""`python -m bench.capacity`: the capacity model (`thrifty.capacity`) against the twin.

    make bench-capacity            # the whole grid (about 15 minutes on two cores)
    python -m bench.capacity --quick

For every (request mix, server configuration) of the grid, two figures of one replica's
capacity at the SLO (TTFT p95 <= 2 s, ITL p95 <= 50 ms):

- the twin's: the highest Poisson rate at which one simulated server (`thrifty.twin`, fast
  forward) meets both p95s over five minutes after a one-minute warm-up, found by bracketing
  from the model's figure and bisecting to 2% (bench/autoscale/traffic.py's replay);
- the model's: `ReplicaModel(config).capacity(mix, slo)`, from the same step-cost calibration
  but no simulation.

The mix the model gets is built the way the live loop builds it: prompt and output lengths as
separate distributions (the twin replays each request's own pair). Progress goes to stderr; the
table lands in bench/results/capacity-<date>.md; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import multiprocessing
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.autoscale.traffic import load_trace, meets_slo_alone

from thrifty.capacity import LatencySlo, ReplicaModel, RequestMix
from thrifty.twin import EngineConfig, TraceRequest, engine_config_from_vllm_args

REPO = Path(__file__).resolve().parents[2]
AZURE = REPO / "bench" / "traces" / "azure-llm-2023-conv.csv"
SLO = LatencySlo(ttft_p95_s=2.0, itl_p95_s=0.050)
GOAL_PCT = 10.0
H100 = "NVIDIA-H100-80GB-HBM3"
L4 = "NVIDIA-L4"
LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"
LLAMA_70B = "meta-llama/Llama-3.1-70B-Instruct"


def log(message: str) -> None:
    print(f"[bench-capacity] {message}", file=sys.stderr, flush=True)


def _lognormal(rng: random.Random, median: float, sigma: float, low: int, high: int) -> int:
    return int(min(high, max(low, round(median * math.exp(rng.gauss(0.0, sigma))))))


def synthetic(
    name: str, prompt: tuple[float, float], output: tuple[float, float], count: int = 4000
) -> list[TraceRequest]:
    """Requests with log-normal prompt and output lengths (median, sigma), seeded by the name."""
    rng = random.Random(name)
    return [
        TraceRequest(
            arrival_s=float(index),
            prompt_tokens=_lognormal(rng, *prompt, low=8, high=12000),
            output_tokens=_lognormal(rng, *output, low=2, high=2000),
            request_id=str(index),
        )
        for index in range(count)
    ]


def mixes() -> dict[str, list[TraceRequest]]:
    return {
        "azure-conv": load_trace(AZURE),
        "chat-short": synthetic("chat-short", (250, 0.8), (180, 0.6)),
        "rag-long": synthetic("rag-long", (3500, 0.4), (120, 0.5)),
        "long-answers": synthetic("long-answers", (500, 0.7), (700, 0.4)),
    }


def config(name: str) -> EngineConfig:
    args: dict[str, dict[str, Any]] = {
        "8b-bf16-h100": {"model": LLAMA_8B},
        "8b-fp8-h100": {"model": LLAMA_8B, "quantization": "fp8", "kv_cache_dtype": "fp8"},
        "8b-bf16-h100-chunk2048": {"model": LLAMA_8B, "max_num_batched_tokens": 2048},
        "8b-bf16-h100-seqs32": {"model": LLAMA_8B, "max_num_seqs": 32},
        "8b-fp8-l4": {"model": LLAMA_8B, "quantization": "fp8"},
        "70b-awq-h100-tp4": {"model": LLAMA_70B, "quantization": "awq_marlin", "tensor_parallel_size": 4},
    }
    gpu = L4 if name.endswith("-l4") else H100
    base = {"max_model_len": 16384, "enable_prefix_caching": False}
    return engine_config_from_vllm_args({**base, **args[name]}, gpu_product=gpu)


GRID: tuple[tuple[str, str], ...] = (
    ("azure-conv", "8b-bf16-h100"),
    ("chat-short", "8b-bf16-h100"),
    ("rag-long", "8b-bf16-h100"),
    ("long-answers", "8b-bf16-h100"),
    ("azure-conv", "8b-fp8-h100"),
    ("rag-long", "8b-fp8-h100"),
    ("azure-conv", "8b-bf16-h100-chunk2048"),
    ("rag-long", "8b-bf16-h100-chunk2048"),
    ("long-answers", "8b-bf16-h100-seqs32"),
    ("chat-short", "8b-bf16-h100-seqs32"),
    ("azure-conv", "8b-fp8-l4"),
    ("chat-short", "8b-fp8-l4"),
    ("azure-conv", "70b-awq-h100-tp4"),
    ("long-answers", "70b-awq-h100-tp4"),
)
QUICK = GRID[:3]


@dataclass(frozen=True)
class Row:
    mix: str
    config: str
    model_rate: float
    model_binding: str
    model_concurrency: float
    twin_rate: float
    error_pct: float
    model_s: float
    twin_runs: int


def _twin_capacity(engine: EngineConfig, sizes: Sequence[TraceRequest], guess: float) -> tuple[float, int]:
    """The twin's capacity to 2%: bracket around `guess` by 15% steps, then bisect."""
    runs = 0

    def ok(rate: float) -> bool:
        nonlocal runs
        runs += 1
        return meets_slo_alone(engine, sizes, rate, ttft_s=SLO.ttft_p95_s or 0, itl_s=SLO.itl_p95_s or 0)

    low = high = max(guess, 0.01)
    if ok(low):
        high = low * 1.15
        while ok(high):
            low, high = high, high * 1.15
    else:
        low = high / 1.15
        while not ok(low):
            low, high = low / 1.15, low
            if low < 1e-3:
                return 0.0, runs
    while (high - low) / low > 0.02:
        middle = (low + high) / 2
        if ok(middle):
            low = middle
        else:
            high = middle
    return (low + high) / 2, runs


def measure(point: tuple[str, str]) -> Row:
    mix_name, config_name = point
    requests = mixes()[mix_name]
    engine = config(config_name)
    sizes = [r for r in requests if r.prompt_tokens + r.output_tokens <= engine.max_model_len]
    mix = RequestMix.from_requests([r.prompt_tokens for r in sizes], [r.output_tokens for r in sizes])
    began = time.perf_counter()
    capacity = ReplicaModel(engine).capacity(mix, SLO)
    model_s = time.perf_counter() - began
    twin, runs = _twin_capacity(engine, sizes, capacity.rate_per_s)
    error = (capacity.rate_per_s - twin) / twin * 100 if twin > 0 else math.inf
    log(
        f"{mix_name} on {config_name}: model {capacity.rate_per_s:.2f}/s ({capacity.binding}), "
        f"twin {twin:.2f}/s, {error:+.1f}% ({runs} twin runs)"
    )
    return Row(
        mix_name,
        config_name,
        capacity.rate_per_s,
        capacity.binding,
        capacity.concurrency,
        twin,
        error,
        model_s,
        runs,
    )


def markdown(rows: list[Row], command: str, date: str) -> str:
    worst = max(abs(row.error_pct) for row in rows)
    within = sum(1 for row in rows if abs(row.error_pct) <= GOAL_PCT)
    lines = [
        f"# Capacity model vs the twin ({date})",
        "",
        f"Command: `{command}`. SLO: TTFT p95 <= {SLO.ttft_p95_s:g} s, ITL p95 <= "
        f"{(SLO.itl_p95_s or 0) * 1000:g} ms. One replica, Poisson arrivals, max_model_len 16384, no "
        "prefix caching. Twin: highest rate meeting both p95s over 5 minutes (after 1 minute of "
        "warm-up), to 2%. Model: `thrifty.capacity.ReplicaModel.capacity`, same calibration, no simulation.",
        "",
        f"**{within} of {len(rows)} points within {GOAL_PCT:g}%; largest error {worst:.1f}%.**",
        "",
        "| mix | configuration | twin req/s | model req/s | error | binds | concurrency | model time |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row.mix} | {row.config} | {row.twin_rate:.2f} | {row.model_rate:.2f} | {row.error_pct:+.1f}% | "
            f"{row.model_binding} | {row.model_concurrency:.0f} | {row.model_s * 1000:.0f} ms |"
        )
    lines += [
        "",
        "Mixes: azure-conv is the lengths of bench/traces/azure-llm-2023-conv.csv; the others are "
        "seeded log-normals (bench/capacity/__main__.py: chat-short prompts 250 / outputs 180 tokens "
        "median, rag-long 3500 / 120, long-answers 500 / 700).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"only the first {len(QUICK)} points")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    grid = QUICK if args.quick else GRID
    log(f"{len(grid)} points, {args.workers} workers")
    with multiprocessing.get_context("fork").Pool(args.workers) as pool:
        rows = pool.map(measure, grid)
    date = datetime.date.today().isoformat()
    command = "make bench-capacity" if not args.quick else "python -m bench.capacity --quick"
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"capacity-{date}" + ("-quick" if args.quick else "")
    (args.out / f"{stem}.md").write_text(markdown(rows, command, date))
    worst = max(abs(row.error_pct) for row in rows)
    print(
        json.dumps(
            {
                "points": len(rows),
                "within_10pct": sum(1 for row in rows if abs(row.error_pct) <= GOAL_PCT),
                "max_error_pct": round(worst, 1),
                "table": str(args.out / f"{stem}.md"),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
