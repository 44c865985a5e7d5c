"""`python -m bench.router [--trace FILE]`: Thrifty's router against published routing policies.

    make bench-router                           # the Mooncake conversation trace (prefix reuse)
    make bench-router TRACE=path/to/trace.jsonl # any trace in the Mooncake format

(a) Fast-forward replay of the trace against N twins, once per policy (round-robin, least-load,
KubeAI's consistent hashing with bounded loads, llm-d's approximate prefix scorer, Thrifty), and
the same for a trace without prefix reuse (the Azure conversation trace). (b) The real router
process on one core in front of a twin on loopback: added latency and the most it forwards.

Progress goes to stderr; a table, a plot and the figures land in bench/results/ with the date;
the last line on stdout is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import shlex
import sys
import time
from pathlib import Path

import uvloop
from bench.router import report
from bench.router.ideal import single_cache_hit_rate
from bench.router.overhead import OverheadResult, measure
from bench.router.policies import ThriftyPolicy, all_policies
from bench.router.replay import RouterRun, replay_router

from thrifty.api import AffinitySpec
from thrifty.twin import (
    EngineConfig,
    TraceRequest,
    engine_config_from_vllm_args,
    load_azure_trace,
    load_mooncake_trace,
    size_server,
)

REPO = Path(__file__).resolve().parents[2]
TRACES = REPO / "bench" / "traces"
DEFAULT_TRACE = TRACES / "mooncake-conversation.jsonl"
NO_REUSE_TRACE = TRACES / "azure-llm-2023-conv.csv"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
GPU = "NVIDIA-H100-80GB-HBM3"
SWEEP = ((1.25, 8.0), (1.5, 8.0), (2.0, 1.0), (2.0, 4.0), (2.0, 8.0), (2.0, 16.0), (3.0, 8.0))


def log(message: str) -> None:
    print(f"[bench-router] {message}", file=sys.stderr, flush=True)


def engine_config() -> EngineConfig:
    """Llama-3.1-8B-Instruct in bf16 with vLLM's defaults on an H100 (the whole 128k context)."""
    return engine_config_from_vllm_args({"model": MODEL}, gpu_product=GPU)


def load(path: Path, time_scale: float = 1.0) -> list[TraceRequest]:
    if path.suffix == ".csv":
        return load_azure_trace(path, time_scale=time_scale)
    return load_mooncake_trace(path, time_scale=time_scale)


def time_scale_for(path: Path, replicas: int, tokens_per_replica_s: float, minutes: float | None) -> float:
    """The factor on arrival times that makes the trace offer `tokens_per_replica_s` prompt tokens
    per replica-second (over its first `minutes`, when given)."""
    requests = load(path)
    if minutes is not None:
        requests = [request for request in requests if request.arrival_s < minutes * 60]
    span = max(request.arrival_s for request in requests) - min(request.arrival_s for request in requests)
    offered = sum(request.prompt_tokens for request in requests) / max(span, 1e-9)
    return offered / (replicas * tokens_per_replica_s)


def replay_all(
    label: str,
    path: Path,
    config: EngineConfig,
    replicas: int,
    tokens_per_replica_s: float,
    minutes: float | None,
    *,
    ideal: bool,
) -> report.TraceRuns:
    scale = time_scale_for(path, replicas, tokens_per_replica_s, minutes)
    requests = load(path, scale)
    if minutes is not None:
        requests = [request for request in requests if request.arrival_s < minutes * 60 * scale]
    kv = size_server(config).kv_capacity_tokens
    log(f"{label}: {len(requests):,} requests from {path.name}, arrival times x{scale:.3f}")
    trace = report.TraceRuns(
        label, str(path.relative_to(REPO) if path.is_relative_to(REPO) else path), len(requests), scale, []
    )
    if ideal:
        started = time.monotonic()
        trace.ideal_pooled = single_cache_hit_rate(requests, kv * replicas)
        trace.ideal_unbounded = single_cache_hit_rate(requests, None)
        log(
            f"{label}: single-cache ideal hit rate {trace.ideal_pooled:.3f} (pooled capacity), "
            f"{trace.ideal_unbounded:.3f} (unbounded) [{time.monotonic() - started:.0f}s]"
        )
    for policy in all_policies(kv):
        started = time.monotonic()
        run = replay_router(requests, config, replicas, policy)
        run.wall_s = time.monotonic() - started
        trace.runs.append(run)
        log(
            f"{label}: {run.policy:20s} hit {run.hit_rate:.3f}  TTFT p50 {run.ttft(50):.3f}s p90 {run.ttft(90):.3f}s  "
            f"imbalance {run.load_imbalance:.3f}  [{run.wall_s:.0f}s]"
        )
    return trace


def sweep(
    path: Path, config: EngineConfig, replicas: int, tokens_per_replica_s: float, minutes: float | None
) -> list[tuple[str, RouterRun]]:
    scale = time_scale_for(path, replicas, tokens_per_replica_s, minutes)
    requests = load(path, scale)
    if minutes is not None:
        requests = [request for request in requests if request.arrival_s < minutes * 60 * scale]
    kv = size_server(config).kv_capacity_tokens
    results = []
    for factor, miss_weight in SWEEP:
        policy = ThriftyPolicy(
            kv_capacity_tokens=kv,
            affinity=AffinitySpec(bounded_load_factor=factor),
            miss_weight=miss_weight,
        )
        run = replay_router(requests, config, replicas, policy)
        setting = f"factor {factor:g}, miss weight {miss_weight:g}"
        log(
            f"sweep {setting}: hit {run.hit_rate:.3f}  TTFT p90 {run.ttft(90):.3f}s  imbalance {run.load_imbalance:.3f}"
        )
        results.append((setting, run))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.router", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--trace", type=Path, default=DEFAULT_TRACE, help="a trace with prefix reuse (Mooncake .jsonl)"
    )
    parser.add_argument(
        "--no-reuse-trace", type=Path, default=NO_REUSE_TRACE, help="a trace without (Azure .csv)"
    )
    parser.add_argument("--replicas", type=int, default=8)
    parser.add_argument(
        "--load",
        type=float,
        default=10_000.0,
        help="prompt tokens per replica-second each trace is scaled to (default 10,000)",
    )
    parser.add_argument(
        "--minutes", type=float, default=None, help="replay only the first minutes (quick look)"
    )
    parser.add_argument(
        "--sweep", action="store_true", help="also replay Thrifty with other factors and weights"
    )
    parser.add_argument("--skip-overhead", action="store_true", help="leave out part (b)")
    parser.add_argument("--rates", default="250,500,1000", help="offered rates of part (b), requests/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each part (b) phase")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    began = time.monotonic()
    config = engine_config()
    kv = size_server(config).kv_capacity_tokens
    date = datetime.date.today().isoformat()
    given = sys.argv[1:] if argv is None else argv
    command = "python -m bench.router" + (f" {shlex.join(given)}" if given else "")
    if given in ([], ["--trace", str(args.trace)]):
        command = "make bench-router" + (f" TRACE={args.trace}" if given else "")

    reuse = replay_all(
        args.trace.stem, args.trace, config, args.replicas, args.load, args.minutes, ideal=True
    )
    no_reuse = (
        replay_all(
            args.no_reuse_trace.stem,
            args.no_reuse_trace,
            config,
            args.replicas,
            args.load,
            args.minutes,
            ideal=False,
        )
        if args.no_reuse_trace
        else None
    )
    sweep_runs = sweep(args.trace, config, args.replicas, args.load, args.minutes) if args.sweep else []
    overhead: OverheadResult | None = None
    notes: list[str] = []
    if not args.skip_overhead:
        log("part (b): router overhead on loopback")
        rates = [float(rate) for rate in args.rates.split(",")]
        load_before = os.getloadavg()[0]
        # The replays left a large heap in this process, which also runs the load generator: a
        # full collection over it pauses the generator for a hundred milliseconds or more.
        gc.collect()
        gc.freeze()
        overhead = uvloop.run(measure(rates, args.seconds, clients=64, max_seconds=8.0))
        notes.append(
            f"Part (b) ran on {os.cpu_count()} CPUs with a 1-minute load average of {load_before:.2f} before it "
            f"and {os.getloadavg()[0]:.2f} after (other work on the machine counts): its latencies are this "
            "machine's; the router's CPU per request is the figure that carries over."
        )

    setup = report.Setup(
        command=command,
        date=date,
        model=MODEL,
        gpu=GPU,
        replicas=args.replicas,
        load_tokens_per_replica_s=args.load,
        kv_capacity_tokens=kv,
        notes=[
            "Policies see what a router sees: their own dispatches, first tokens (streaming) and completions "
            "once simulated time has passed them, and for llm-d the replicas' waiting queue and KV usage, read "
            "fresh at every decision (fresher than its scrapes).",
            "Load imbalance: max over mean of each replica's time-averaged requests in flight.",
            "Hit rate: prompt tokens found in the replica's prefix cache at admission over all prompt tokens "
            "(the twin's vLLM-style block cache, 16-token blocks, LRU eviction).",
            "The twin's decode-run shortcut is declined while a request awaits its first token (a twin bug); "
            "results are exact single steps there.",
            *notes,
            f"Wall time of the whole run: {time.monotonic() - began:.0f}s.",
        ],
    )
    figures = report.headline(reuse, no_reuse, overhead)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"router-{date}"
    png = args.out / f"{stem}.png"
    report.plot(png, reuse, no_reuse, overhead)
    (args.out / f"{stem}.md").write_text(
        report.markdown(setup, reuse, no_reuse, overhead, figures, png=png.name, sweep=sweep_runs)
    )
    (args.out / f"{stem}.json").write_text(
        json.dumps({"setup": setup.__dict__, "figures": figures}, indent=2) + "\n"
    )
    print(report.policy_table(reuse))
    if no_reuse is not None:
        print()
        print(report.policy_table(no_reuse))
    if overhead is not None:
        print()
        print(report.overhead_table(overhead))
    print(f"\nwrote {args.out / stem}.md, .png, .json", file=sys.stderr)
    print(json.dumps(figures, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
