"""`make bench-twin`: the twin's step-time fidelity, and an hour of trace replayed in fast-forward.

1. Fidelity: the twin's step time, from its own `step_cost_model` with the committed H100
   calibration, against every H100 measurement (bench/twin/h100-measurements.json) and against the
   published figures (published.py); goal: within 15% everywhere.
2. Replay: the first hour of azure-llm-2023-conv.csv on 4 Llama-3.1-8B H100 twins (vLLM's default
   flags, round-robin): wall-clock time (goal under 60 s), TTFT and ITL percentiles, GPU-hours,
   preemptions.

Writes bench/results/twin-<date>.md and bench/results/twin-<date>-decode.png. Progress goes to stderr;
the last line on stdout is one JSON object with the headline figures.

Usage:
    .venv/bin/python bench/twin/bench.py [--trace PATH] [--twins 4] [--results DIR]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

from decode_plot import plot_decode
from measured_points import (
    GOAL_PCT,
    REPO,
    Point,
    error_pct,
    llama_8b_on_h100,
    load_points,
    twin_step_ms,
)
from published import PublishedFigure, published_figures
from replay_hour import HourReplay, default_trace, replay_hour

from thrifty.twin import GpuCalibration, step_cost_model

REPLAY_GOAL_S = 60.0


def h100_table(points: list[Point], twin_ms: dict[str, float]) -> list[str]:
    """Decode as a batch x context grid and prefill as rows: measured / twin (error)."""
    decode = {(p.batch, p.context): p for p in points if p.kind == "decode"}
    contexts = sorted({context for _, context in decode})
    lines = [
        "Decode step, ms: H100 measured / twin (twin error).",
        "",
        "| batch | " + " | ".join(f"ctx {c}" for c in contexts) + " |",
        "|---:|" + "---:|" * len(contexts),
    ]
    for batch in sorted({batch for batch, _ in decode}):
        cells = []
        for context in contexts:
            point = decode.get((batch, context))
            if point is None:
                cells.append("KV does not fit")
                continue
            model = twin_ms[point.label]
            cells.append(
                f"{point.measured_ms:.2f} / {model:.2f} ({_pct(error_pct(model, point.measured_ms))})"
            )
        lines.append(f"| {batch} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Prefill pass (whole prompts in one step), ms:",
        "",
        "| prompts | tokens | H100 measured | twin | twin error |",
        "|---|---:|---:|---:|---:|",
    ]
    for point in (p for p in points if p.kind != "decode"):
        model = twin_ms[point.label]
        lines.append(
            f"| {point.batch} x {point.context} | {point.tokens} | {point.measured_ms:.2f} | {model:.2f} "
            f"| {_pct(error_pct(model, point.measured_ms))} |"
        )
    return lines


def published_table(rows: list[PublishedFigure], twin_ms: dict[str, float]) -> list[str]:
    lines = [
        "| published figure | setting | published ms | H100 measured ms | twin ms | measured vs pub. "
        "| twin vs pub. | comparable | why they may differ |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        model = twin_ms[row.point.label]
        comparable = "yes" if row.comparable else "no: the published figure disagrees with the H100"
        lines.append(
            f"| {row.source} | {row.setting} | {row.published_ms:.2f} | {row.point.measured_ms:.2f} "
            f"| {model:.2f} | {_pct(row.measured_vs_published_pct)} | {_pct(error_pct(model, row.published_ms))} "
            f"| {comparable} | {row.caveat} |"
        )
    return lines


def replay_table(replay: HourReplay) -> list[str]:
    config = replay.config

    def ms(values: dict[int, float]) -> str:
        return " / ".join(f"{1e3 * values[q]:.1f}" for q in sorted(values))

    return [
        "| figure | value |",
        "|---|---:|",
        f"| wall-clock, whole replay (goal < {REPLAY_GOAL_S:.0f} s) | {replay.wall_s:.1f} s |",
        f"| of which reading the trace | {replay.load_wall_s:.2f} s |",
        f"| simulated time / wall-clock | {replay.simulated_s / replay.wall_s:,.0f}x real time |",
        f"| requests (rejected) | {replay.requests:,} ({replay.rejected}) |",
        f"| prompt / output tokens | {replay.prompt_tokens:,} / {replay.output_tokens:,} |",
        f"| TTFT p50 / p90 / p99 | {ms(replay.ttft_s)} ms |",
        f"| ITL p50 / p90 / p99 (every token gap) | {ms(replay.itl_s)} ms |",
        f"| E2E p50 / p90 / p99 | {ms(replay.e2e_s)} ms |",
        f"| GPU-hours ({replay.twins} twins x {config.tensor_parallel_size} GPU, "
        f"{replay.simulated_s / 3600:.3f} h) | {replay.gpu_hours:.3f} |",
        f"| preemptions | {replay.preemptions} |",
    ]


def _pct(value: float) -> str:
    return f"{value:+.1f}%"


def _commit() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} (uncommitted changes)" if dirty else head


def _describe(calibration: GpuCalibration) -> str:
    return (
        f"c0 = {calibration.c0_s * 1e3:.3f} ms, eta_bw = {calibration.eta_bw} "
        f"({calibration.eta_bw * calibration.bandwidth_bytes_per_s / 1e12:.2f} TB/s), eta_f = {calibration.eta_f} "
        f"({calibration.eta_f * calibration.flops_bf16 / 1e12:.0f} TFLOP/s), "
        f"matmul norm exponent p = {calibration.matmul_norm_exponent:g}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trace", type=Path, default=default_trace(), help="Azure conversation trace CSV")
    parser.add_argument("--twins", type=int, default=4, help="twins in the replay (default 4)")
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results", help="where to write")
    args = parser.parse_args()

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    config = llama_8b_on_h100()  # the committed calibration file, as every twin loads it
    model = step_cost_model(config)
    points, doc = load_points()
    twin_ms = {p.label: twin_step_ms(model, p) for p in points}
    errors = {p.label: error_pct(twin_ms[p.label], p.measured_ms) for p in points}
    worst_label = max(errors, key=lambda label: abs(errors[label]))
    within = sum(abs(e) <= GOAL_PCT for e in errors.values())
    rms = math.sqrt(sum(e * e for e in errors.values()) / len(errors))
    published = published_figures(points)
    comparable = [row for row in published if row.comparable]
    vs_published = {row: abs(error_pct(twin_ms[row.point.label], row.published_ms)) for row in published}
    worst_published = max((vs_published[row] for row in comparable), default=math.nan)
    worst_published_all = max(vs_published.values())

    fidelity = [
        f"Twin calibration ({config.gpu.gpu}.json): {_describe(config.gpu)}.",
        "",
        *h100_table(points, twin_ms),
        "",
        f"**{within} of {len(points)} points within {GOAL_PCT:.0f}%**; largest error "
        f"{errors[worst_label]:+.1f}% ({worst_label}), rms {rms:.1f}%.",
    ]
    comparison = [
        *published_table(published, twin_ms),
        "",
        f"Comparable rows (the published figure within {GOAL_PCT:.0f}% of the H100's own measurement of the same "
        f"setting): {len(comparable)} of {len(published)}; the twin's largest difference from them is "
        f"**{worst_published:.1f}%**. Over all rows, including published figures that the H100 itself "
        f"contradicts, it is {worst_published_all:.1f}%.",
    ]
    print(
        "\n".join(
            ["## Twin vs H100 measurements", "", *fidelity, "", "## Twin vs published", "", *comparison]
        )
    )
    print(flush=True)

    trace = args.trace
    progress(f"replaying the first hour of {trace} on {args.twins} twins ...")
    replay = replay_hour(trace, twins=args.twins, progress=progress)
    replay_lines = replay_table(replay)
    print("\n".join(["## Fast-forward replay", "", *replay_lines]))

    date = datetime.datetime.now(datetime.UTC).date().isoformat()
    plot = args.results / f"twin-{date}-decode.png"
    plot_decode(
        points,
        model,
        plot,
        title=f"Decode step time, Llama-3.1-8B bf16 on one H100: measured vs twin\n{_describe(config.gpu)}",
    )
    report = args.results / f"twin-{date}.md"
    meta = doc["meta"]
    flags = replay.config
    report.write_text(
        "\n".join(
            [
                f"# The vLLM twin: step-time fidelity and an hour of replay ({date})",
                "",
                "Command: `make bench-twin` (`.venv/bin/python bench/twin/bench.py`), on one "
                f"{platform.machine()} machine with {os.cpu_count()} CPUs, Python {platform.python_version()}, "
                f"commit {_commit()}.",
                "",
                "## Twin vs H100 measurements",
                "",
                f"Reference: bench/twin/h100-measurements.json, {meta['gpu_name']}, PyTorch {meta['torch']}, "
                f"{str(meta['date_utc'])[:10]}: CUDA-graph timings of a Llama-3.1-8B-shaped bf16 model, compiled "
                "variant (bench/twin/README.md). Twin: `thrifty.twin.step_cost_model` of "
                "`--model meta-llama/Llama-3.1-8B-Instruct` on that GPU product.",
                "",
                *fidelity,
                "",
                f"![decode step time, twin vs H100]({plot.name})",
                "",
                "## Twin vs published figures",
                "",
                "Sources and the reasoning behind each setting: bench/twin/published.py and bench/twin/README.md.",
                "",
                *comparison,
                "",
                "## Fast-forward replay",
                "",
                f"The hour of {trace.name} ({replay.requests:,} requests arriving over "
                f"{replay.last_arrival_s / 60:.1f} min), round-robin over {replay.twins} "
                f"loaded twins of `--model meta-llama/Llama-3.1-8B-Instruct` on one H100 each, vLLM's default "
                f"flags for that GPU (max_num_seqs {flags.max_num_seqs}, max_num_batched_tokens "
                f"{flags.max_num_batched_tokens}, max_model_len {flags.max_model_len}, chunked prefill, prefix "
                "caching). The trace has no prefix identity, so nothing hits the cache. Step times are the "
                "calibrated GPU time, with no vLLM host overhead. Baseline for the wall-clock figure: real "
                "time (the hour itself).",
                "",
                *replay_lines,
                "",
            ]
        )
    )
    progress(f"wrote {report.relative_to(REPO) if report.is_relative_to(REPO) else report} and {plot.name}")

    summary = {
        "max_error_pct_vs_h100": round(abs(errors[worst_label]), 1),
        "rms_error_pct_vs_h100": round(rms, 2),
        "points_within_goal": f"{within}/{len(points)}",
        "max_error_pct_vs_published": round(worst_published, 1),
        "max_error_pct_vs_published_all_rows": round(worst_published_all, 1),
        "published_rows_comparable": f"{len(comparable)}/{len(published)}",
        "goal_pct": GOAL_PCT,
        "replay_seconds": round(replay.wall_s, 2),
        "replay_requests": replay.requests,
        "ttft_s": {f"p{q}": round(v, 4) for q, v in replay.ttft_s.items()},
        "itl_s": {f"p{q}": round(v, 5) for q, v in replay.itl_s.items()},
        "gpu_hours": round(replay.gpu_hours, 3),
        "preemptions": replay.preemptions,
        "report": str(report.relative_to(REPO) if report.is_relative_to(REPO) else report),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
