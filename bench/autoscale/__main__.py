"""`python -m bench.autoscale [--trace FILE]`: Thrifty's control loop against published autoscalers.

    make bench-autoscale                      # the Azure conversation trace
    make bench-autoscale TRACE=path/to.csv    # any trace in the Azure format (or Mooncake .jsonl)

Progress goes to stderr; the table, plot and every run land in bench/results/ with the date; the
last line on stdout is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from bench.autoscale import report
from bench.autoscale.experiments import POLICIES, BenchContext, run_all
from bench.autoscale.policies.base import Bounds
from bench.autoscale.roofline import roofline_gpu_hours
from bench.autoscale.runner import Slo, print_progress
from bench.autoscale.traffic import calibrate, load_trace, multiply_rate

from thrifty.api import ScalingSpec
from thrifty.control import policy_from_spec
from thrifty.twin import EngineConfig, engine_config_from_vllm_args

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TRACE = REPO / "bench" / "traces" / "azure-llm-2023-conv.csv"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
GPU = "NVIDIA-H100-80GB-HBM3"
ENGINE_MAX_NUM_SEQS = 256  # spec.batching.maxNumSeqs's default: every policy starts from it

# The InferenceModel's spec.scaling for the benchmark, as a user would write it. Thrifty's policy
# comes from it through the same mapping the operator uses; nothing here is tuned to a trace.
SCALING = {
    "replicas": {"min": 1, "max": 16},
    "slo": {"ttftP95": "2s", "itlP95": "50ms"},
    "tuneMaxNumSeqs": {"enabled": True, "min": 8, "max": 1024},
}


def engine_config(
    max_model_len: int, *, prefix_caching: bool, model: str = MODEL, gpus_per_replica: int = 1
) -> EngineConfig:
    return engine_config_from_vllm_args(
        {
            "model": model,
            "max_model_len": max_model_len,
            "max_num_seqs": ENGINE_MAX_NUM_SEQS,
            "enable_prefix_caching": prefix_caching,
            "tensor_parallel_size": gpus_per_replica,
        },
        gpu_product=GPU,
    )


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.autoscale", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--trace", type=Path, default=DEFAULT_TRACE, help="Azure-format .csv or Mooncake .jsonl"
    )
    parser.add_argument("--model", default=MODEL, help="a Hugging Face name the twin knows")
    parser.add_argument(
        "--gpus-per-replica", type=int, default=1, help="tensor parallel size (4 for a 70B on H100s)"
    )
    parser.add_argument("--replicas-at-peak", type=int, default=8)
    parser.add_argument("--startup", type=float, default=120.0, help="seconds from scale-up to serving")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--target",
        type=float,
        default=None,
        help="Thrifty's spec.scaling.targetBatchUtilization (default: the spec's own default)",
    )
    parser.add_argument(
        "--step-time-scale",
        type=float,
        default=1.0,
        help="the twins run this many times slower than the calibration every policy is told "
        "(1.3: a real vLLM 30%% slower; Thrifty must correct its model online)",
    )
    parser.add_argument(
        "--engine-tokens",
        type=int,
        default=None,
        help="every policy's replicas run --max-num-batched-tokens N (attribution: the baselines with "
        "the budget Thrifty chose); the traffic is still sized on vLLM's default",
    )
    parser.add_argument(
        "--minutes", type=float, default=None, help="replay only the first minutes (quick look)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument(
        "--only",
        default=",".join(POLICIES),
        help=f"comma-separated subset of {','.join(POLICIES)} (a partial run)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    line = run_bench(args, argv)
    if line is not None:
        print(json.dumps(line))
    return 0


def run_bench(args: argparse.Namespace, argv: list[str] | None = None) -> dict[str, Any] | None:
    """One trace through every policy; the summary line (None for a partial run, whose runs are
    printed instead)."""
    began = time.monotonic()
    slo = Slo(ttft_p95_s=2.0, itl_p95_s=0.050)

    raw = load_trace(args.trace)
    if args.minutes is not None:
        raw = [r for r in raw if r.arrival_s < args.minutes * 60]
    longest = max(r.prompt_tokens + r.output_tokens for r in raw)
    config = engine_config(
        min(131072, 1024 * math.ceil(longest / 1024)),
        prefix_caching=any(r.block_hashes for r in raw),
        model=args.model,
        gpus_per_replica=args.gpus_per_replica,
    )
    print_progress(f"calibrating one replica's capacity on {args.trace.name} ...")
    calibration = calibrate(
        raw,
        config,
        replicas_at_peak=args.replicas_at_peak,
        ttft_s=slo.ttft_p95_s,
        itl_s=slo.itl_p95_s,
        step_time_scale=args.step_time_scale,
    )
    if calibration.capacity_per_replica < 0.1:
        print_progress(
            f"warning: one replica meets the SLOs only below {calibration.capacity_per_replica:.2f} requests/s on "
            f"{args.trace.name}: its own requests (long prompts) break TTFT p95 <= {slo.ttft_p95_s:g}s or ITL p95 <= "
            f"{slo.itl_p95_s * 1000:g}ms at almost any load, so no policy can reach the attainment goal"
        )
    requests = multiply_rate(raw, calibration.factor)
    # Every run starts from the same fleet: enough for the busiest of the first five minutes with a
    # quarter to spare, as an operator would provision before handing over to an autoscaler.
    first_minutes = [sum(1 for r in requests if m * 60 <= r.arrival_s < (m + 1) * 60) for m in range(5)]
    initial = max(1, math.ceil(max(first_minutes) / 60.0 / (0.8 * calibration.capacity_per_replica)))
    print_progress(
        f"one replica: {calibration.capacity_per_replica:.2f} req/s within SLO; peak {calibration.peak_rate:.2f} req/s; "
        f"rate x{calibration.factor:.2f} -> {len(requests):,} requests; start with {initial} replicas"
    )
    if args.engine_tokens is not None:
        config = dataclasses.replace(config, max_num_batched_tokens=args.engine_tokens)
    scaling = dict(SCALING)
    if args.target is not None:
        scaling["targetBatchUtilization"] = args.target
    spec = ScalingSpec.model_validate(scaling)
    policy = policy_from_spec(
        spec,
        engine_max_num_seqs=ENGINE_MAX_NUM_SEQS,
        behind_router=True,
        startup_s=args.startup,
        engine=config,
    )
    context = BenchContext(
        requests=requests,
        config=config,
        bounds=Bounds(spec.replicas.min, spec.replicas.max),
        slo=slo,
        startup_s=args.startup,
        initial_replicas=initial,
        replicas_at_peak=args.replicas_at_peak,
        thrifty=policy,
        step_time_scale=args.step_time_scale,
    )
    results = run_all(context, workers=args.workers, only=args.only.split(","))
    roofline = roofline_gpu_hours(
        requests, config, itl_slo_s=slo.itl_p95_s, step_time_scale=args.step_time_scale
    )

    date = datetime.date.today().isoformat()
    stem = f"autoscale-{date}" if args.trace == DEFAULT_TRACE else f"autoscale-{date}-{args.trace.stem}"
    if args.model != MODEL:
        stem += "-" + args.model.rsplit("/", 1)[-1].lower()
    if args.step_time_scale != 1.0:
        stem += f"-steptime{args.step_time_scale:g}"
    if args.engine_tokens is not None:
        stem += f"-tokens{args.engine_tokens}"
    args.out.mkdir(parents=True, exist_ok=True)
    command = "make bench-autoscale" + ("" if args.trace == DEFAULT_TRACE else f" TRACE={args.trace}")
    if argv is not None or len(sys.argv) > 1:
        command = "python -m bench.autoscale " + shlex.join(argv if argv is not None else sys.argv[1:])
    setup = report.Setup(
        command=command,
        date=date,
        trace=args.trace.name,
        requests=len(requests),
        rate_factor=calibration.factor,
        capacity_per_replica=calibration.capacity_per_replica,
        peak_rate=calibration.peak_rate,
        replicas_at_peak=args.replicas_at_peak,
        initial_replicas=initial,
        startup_s=args.startup,
        model=args.model,
        gpu=GPU if args.gpus_per_replica == 1 else f"{args.gpus_per_replica} x {GPU}",
        engine_max_num_seqs=ENGINE_MAX_NUM_SEQS,
        max_num_batched_tokens=config.max_num_batched_tokens,
        bounds=(spec.replicas.min, spec.replicas.max),
        slo=slo,
        roofline_gpu_hours=roofline,
        step_time_scale=args.step_time_scale,
        wall_s=time.monotonic() - began,
    )
    paths = {
        "table": str((args.out / f"{stem}.md").relative_to(REPO))
        if args.out.is_relative_to(REPO)
        else str(args.out / f"{stem}.md"),
    }
    report.write_json(args.out / f"{stem}.json", results, setup)
    if not any(result.policy == "thrifty" for result in results) or not any(
        result.policy not in report.NOT_BASELINES for result in results
    ):
        print_progress(
            f"partial run (Thrifty or every baseline left out): runs written to {args.out / stem}.json"
        )
        print(
            json.dumps(
                {
                    r.policy: {"gpu_hours": round(r.gpu_hours, 3), "slo_attainment": r.slo_attainment}
                    for r in results
                }
            )
        )
        return None
    line = report.summary(results, setup, paths=paths)
    report.plot(args.out / f"{stem}.png", results, setup)
    (args.out / f"{stem}.md").write_text(report.markdown(results, setup, line, png_name=f"{stem}.png"))
    print(report.table(results, setup))
    return line


if __name__ == "__main__":
    sys.exit(main())
