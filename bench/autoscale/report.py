"""The benchmark's outputs: the table (Markdown), every run (JSON), the plot (PNG), the summary line."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.autoscale.runner import RunResult, Slo


@dataclass(frozen=True)
class Setup:
    """What a reader needs to reproduce and interpret the run."""

    command: str
    date: str
    trace: str
    requests: int
    rate_factor: float
    capacity_per_replica: float
    peak_rate: float
    replicas_at_peak: int
    initial_replicas: int
    startup_s: float
    model: str
    gpu: str
    engine_max_num_seqs: int
    max_num_batched_tokens: int
    bounds: tuple[int, int]
    slo: Slo
    roofline_gpu_hours: float
    wall_s: float
    step_time_scale: float = 1.0
    """The twins' step time over the calibration every policy is told (1: calibrated)."""


def _miscalibration(setup: Setup) -> str:
    if setup.step_time_scale == 1.0:
        return ""
    return (
        f"\n- Mis-calibrated engines: every twin step takes {setup.step_time_scale:g}x the calibrated time, while "
        "Thrifty's capacity model starts from the calibration and must correct itself online; the rate rule, the "
        "clairvoyant bound and the roofline use the true speed."
    )


NOT_BASELINES = frozenset({"thrifty", "clairvoyant"})


def clairvoyant(results: Sequence[RunResult]) -> RunResult | None:
    return next((r for r in results if r.policy == "clairvoyant"), None)


def headline_runs(results: Sequence[RunResult]) -> list[RunResult]:
    """Thrifty, then each baseline's default and tuned runs (tuned only where it differs), then
    the clairvoyant bound."""
    chosen: list[RunResult] = [r for r in results if r.policy == "thrifty"]
    for policy in sorted({r.policy for r in results} - NOT_BASELINES):
        default = next(r for r in results if r.policy == policy and r.variant == "default")
        tuned = next(r for r in results if r.policy == policy and r.variant == "tuned")
        chosen.append(default)
        if tuned.setting != default.setting:
            chosen.append(tuned)
    bound = clairvoyant(results)
    if bound is not None:
        chosen.append(bound)
    return chosen


def best_baseline(results: Sequence[RunResult], goal: float = 0.99) -> RunResult:
    """Fewest GPU-hours among baseline runs (default or tuned) reaching `goal`; else the highest
    attainment."""
    candidates = [
        r
        for r in results
        if r.policy not in NOT_BASELINES and r.variant in ("default", "tuned") and r.completed
    ]
    meeting = [r for r in candidates if r.slo_attainment >= goal]
    if meeting:
        return min(meeting, key=lambda r: (r.gpu_hours, -r.slo_attainment))
    return max(candidates, key=lambda r: (r.slo_attainment, -r.gpu_hours))


def _label(result: RunResult) -> str:
    return f"{result.policy} ({result.variant}{', ' + result.setting if result.setting else ''})"


def table(results: Sequence[RunResult], setup: Setup) -> str:
    thrifty = next(r for r in results if r.policy == "thrifty")
    lines = [
        "| policy | run | setting | GPU-hours | vs Thrifty | SLO attainment (1-min windows) | requests within SLO | "
        "TTFT p95 | ITL p95 | engine restarts | tokens per step at the end | decisions |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in headline_runs(results):
        if not run.completed:
            lines.append(
                f"| {run.policy} | {run.variant} | {run.setting or 'defaults'} | | | missed the 99% goal by "
                f"minute {int((run.stopped_at_s or 0) // 60)} (stopped) | | | | {run.restarts} | {run.engine_tokens} | {run.decisions} |"
            )
            continue
        ratio = run.gpu_hours / thrifty.gpu_hours - 1 if thrifty.gpu_hours else 0.0
        lines.append(
            f"| {run.policy} | {run.variant} | {run.setting or 'defaults'} | {run.gpu_hours:.2f} | "
            f"{ratio:+.0%} | {run.slo_attainment:.1%} ({run.windows - run.failed_windows}/{run.windows}) | "
            f"{run.request_attainment:.1%} | {run.ttft_p95_s:.2f}s | {run.itl_p95_s * 1000:.0f}ms | "
            f"{run.restarts} | {run.engine_tokens} | {run.decisions} |"
        )
    lines.append(
        f"| roofline lower bound | | | {setup.roofline_gpu_hours:.2f} | "
        f"{setup.roofline_gpu_hours / thrifty.gpu_hours - 1:+.0%} | | | | | | | |"
    )
    return "\n".join(lines)


def grid_table(results: Sequence[RunResult]) -> str:
    lines = ["| policy | setting | outcome |", "| --- | --- | --- |"]
    for run in results:
        if run.variant != "grid":
            continue
        outcome = (
            f"{run.gpu_hours:.2f} GPU-hours, attainment {run.slo_attainment:.1%}"
            if run.completed
            else f"missed the 99% goal by minute {int((run.stopped_at_s or 0) // 60)} (stopped)"
        )
        lines.append(f"| {run.policy} | {run.setting} | {outcome} |")
    return "\n".join(lines)


def summary(results: Sequence[RunResult], setup: Setup, *, paths: dict[str, str]) -> dict[str, Any]:
    thrifty = next(r for r in results if r.policy == "thrifty")
    best = best_baseline(results)
    saving = 1 - thrifty.gpu_hours / best.gpu_hours if best.gpu_hours else 0.0
    bound = clairvoyant(results)
    return {
        "thrifty_gpu_hours": round(thrifty.gpu_hours, 3),
        "thrifty_slo_attainment": round(thrifty.slo_attainment, 4),
        "best_baseline": _label(best),
        "best_baseline_gpu_hours": round(best.gpu_hours, 3),
        "best_baseline_slo_attainment": round(best.slo_attainment, 4),
        "roofline_gpu_hours": round(setup.roofline_gpu_hours, 3),
        "clairvoyant_gpu_hours": round(bound.gpu_hours, 3) if bound is not None else None,
        "clairvoyant_slo_attainment": round(bound.slo_attainment, 4) if bound is not None else None,
        "thrifty_vs_clairvoyant": round(thrifty.gpu_hours / bound.gpu_hours, 3)
        if bound is not None and bound.gpu_hours
        else None,
        "thrifty_saving_vs_best_baseline": round(saving, 4),
        "thrifty_engine_tokens": thrifty.engine_tokens,
        "trace": setup.trace,
        "rate_factor": round(setup.rate_factor, 3),
        "attainment_definition": "fraction of 1-minute windows with TTFT p95 <= "
        f"{setup.slo.ttft_p95_s:g}s and ITL p95 <= {setup.slo.itl_p95_s * 1000:g}ms",
        **paths,
    }


def markdown(
    results: Sequence[RunResult], setup: Setup, summary_line: dict[str, Any], *, png_name: str
) -> str:
    thrifty = next(r for r in results if r.policy == "thrifty")
    best = best_baseline(results)
    return f"""# Autoscaling benchmark, {setup.date}

Command: `{setup.command}` ({setup.wall_s / 60:.1f} minutes of wall time).

- Trace: `{setup.trace}`, {setup.requests:,} requests after multiplying the rate by {setup.rate_factor:.2f}
  (one replica serves {setup.capacity_per_replica:.2f} requests/s within the SLOs; the trace's busiest five
  minutes carry {setup.peak_rate:.2f} requests/s, so the scaled peak needs about {setup.replicas_at_peak} replicas).
- Model: {setup.model} on one {setup.gpu} per replica (the vLLM twin's fast-forward simulation),
  `--max-num-seqs {setup.engine_max_num_seqs}`, `--max-num-batched-tokens {setup.max_num_batched_tokens}`;
  replicas {setup.bounds[0]}..{setup.bounds[1]}; every run starts with {setup.initial_replicas} loaded replicas;
  a new replica serves {setup.startup_s:g}s after it is asked for; an engine-flag change is a rolling restart.{_miscalibration(setup)}
- SLO: TTFT p95 <= {setup.slo.ttft_p95_s:g}s and ITL p95 <= {setup.slo.itl_p95_s * 1000:g}ms. **SLO attainment** is the
  fraction of one-minute windows of the replay (aligned on whole minutes, windows without traffic left out)
  whose TTFT p95 and ITL p95 both meet it; "requests within SLO" is the fraction of requests whose own TTFT
  and mean inter-token gap both meet it.
- Thrifty runs once with its defaults; each baseline runs with its published defaults and tuned by a grid
  search for the fewest GPU-hours that still reach 99% attainment on this trace.

## Result

Thrifty: **{thrifty.gpu_hours:.2f} GPU-hours at {thrifty.slo_attainment:.1%} attainment**. Best baseline:
{_label(best)}, {best.gpu_hours:.2f} GPU-hours at {best.slo_attainment:.1%}. Thrifty uses
{_relative(summary_line["thrifty_saving_vs_best_baseline"])} GPU-hours than it. {_bound_sentence(summary_line)}
Roofline lower bound: {setup.roofline_gpu_hours:.2f} GPU-hours.

{table(results, setup)}

![replicas, utilization and latency over time]({png_name})

## Grid search

{grid_table(results)}

## Summary line

```json
{json.dumps(summary_line)}
```
"""


def _bound_sentence(summary_line: dict[str, Any]) -> str:
    hours = summary_line.get("clairvoyant_gpu_hours")
    if hours is None:
        return ""
    return (
        f"Clairvoyant bound (each minute's fewest replicas meeting the SLO, known in advance): {hours:.2f} "
        f"GPU-hours at {summary_line['clairvoyant_slo_attainment']:.1%}; Thrifty uses "
        f"{summary_line['thrifty_vs_clairvoyant']:.2f} x it."
    )


def _relative(saving: float) -> str:
    return f"{saving:.1%} fewer" if saving >= 0 else f"{-saving:.1%} more"


def write_json(path: Path, results: Sequence[RunResult], setup: Setup) -> None:
    payload = {
        "setup": dataclasses.asdict(setup),
        # Grid candidates keep their figures; only the runs in the table keep their time series.
        "runs": [
            {
                **dataclasses.asdict(r),
                "notes": r.notes[:200],
                **({"series": []} if r.variant == "grid" else {}),
            }
            for r in results
        ],
    }
    path.write_text(json.dumps(payload, indent=1))


def plot(path: Path, results: Sequence[RunResult], setup: Setup) -> None:
    """Replicas, batch utilization, TTFT p95 and ITL p95 over time; defaults left, tuned right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    thrifty = next(r for r in results if r.policy == "thrifty")
    bound = [r for r in results if r.policy == "clairvoyant"]
    columns = {
        "published defaults": [
            thrifty,
            *(r for r in results if r.variant == "default" and r.policy not in NOT_BASELINES),
            *bound,
        ],
        "tuned on this trace": [thrifty, *(r for r in results if r.variant == "tuned"), *bound],
    }
    rows = ("replicas (GPUs held)", "batch utilization", "TTFT p95 (s)", "ITL p95 (ms)")
    figure, axes = plt.subplots(len(rows), 2, figsize=(16, 14), sharex=True)
    for column, (title, runs) in enumerate(columns.items()):
        for run in runs:
            minutes = [p.time_s / 60 for p in run.series]
            style: dict[str, Any] = {"linewidth": 1.1}
            if run.policy == "thrifty":
                style = {"linewidth": 2.2, "color": "black"}
            elif run.policy == "clairvoyant":
                style = {"linewidth": 1.4, "color": "grey", "linestyle": "--"}
            name = run.policy if run.policy == "thrifty" else f"{run.policy} ({run.setting})"
            axes[0][column].plot(minutes, [p.gpus for p in run.series], label=name, **style)
            axes[1][column].plot(minutes, [p.utilization for p in run.series], **style)
            axes[2][column].plot(minutes, [p.ttft_p95_s or 0.0 for p in run.series], **style)
            axes[3][column].plot(minutes, [(p.itl_p95_s or 0.0) * 1000 for p in run.series], **style)
        axes[0][column].set_title(title)
        axes[0][column].legend(fontsize=7)
        axes[2][column].axhline(setup.slo.ttft_p95_s, color="red", linestyle="--", linewidth=0.8)
        axes[3][column].axhline(setup.slo.itl_p95_s * 1000, color="red", linestyle="--", linewidth=0.8)
        axes[2][column].set_yscale("log")
        axes[3][column].set_yscale("log")
        axes[-1][column].set_xlabel("minute of the replay")
    for row, label in enumerate(rows):
        axes[row][0].set_ylabel(label)
    figure.suptitle(
        f"{setup.trace} x{setup.rate_factor:.1f}: {setup.model} on {setup.gpu}; SLO TTFT p95 <= "
        f"{setup.slo.ttft_p95_s:g}s, ITL p95 <= {setup.slo.itl_p95_s * 1000:g}ms (red)"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
