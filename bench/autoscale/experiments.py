"""Which runs the benchmark makes: Thrifty once with its defaults; every baseline with its published
defaults and with its main target tuned by a grid search on the same trace.

The grid of each baseline is ordered from the cheapest setting (fewest replicas) to the most
generous. Candidates run in that order and stop early once they miss the attainment goal (99% of
one-minute windows); the first that completes is the tuned setting, on the assumption that a more
generous setting only costs more. When none completes, the most generous one runs to the end and
stands as the tuned run. Runs happen in worker processes that inherit the scaled trace by fork.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.autoscale.policies.aibrix_kpa import AibrixKpa
from bench.autoscale.policies.base import Autoscaler, Bounds
from bench.autoscale.policies.clairvoyant import Clairvoyant, fewest_replicas_per_minute, raise_missed
from bench.autoscale.policies.hpa import HorizontalPodAutoscaler
from bench.autoscale.policies.kubeai import KubeAI
from bench.autoscale.policies.llmd_saturation import LlmdSaturation
from bench.autoscale.policies.static import StaticPeak
from bench.autoscale.policies.thrifty import ThriftyPolicy
from bench.autoscale.runner import RunResult, Slo, print_progress, run_policy

from thrifty.control import ScalingPolicy
from thrifty.twin import EngineConfig, TraceRequest


@dataclass(frozen=True)
class BenchContext:
    requests: Sequence[TraceRequest]
    config: EngineConfig
    bounds: Bounds
    slo: Slo
    startup_s: float
    initial_replicas: int
    replicas_at_peak: int
    thrifty: ScalingPolicy
    goal: float = 0.99
    step_time_scale: float = 1.0
    """The twins' steps over the calibration's: every policy, Thrifty's model included, is told the
    calibrated engine; only the twins (and the clairvoyant bound) run at the true speed."""


@dataclass(frozen=True)
class Baseline:
    """One published autoscaler and the knob a careful operator would tune."""

    kind: str
    parameter: str
    default: float
    grid: tuple[float, ...]
    """Cheapest first."""
    build: Callable[[float, BenchContext], Autoscaler]
    monotone: bool = False
    """Whether a value cheaper than one that misses the goal misses it too (fewer static replicas
    never serve better): then the grid skips them."""

    def setting(self, value: float) -> str:
        return f"{self.parameter}={value:g}"


def _static(value: float, context: BenchContext) -> Autoscaler:
    return StaticPeak(int(value))


def _hpa(value: float, context: BenchContext) -> Autoscaler:
    return HorizontalPodAutoscaler(context.bounds, target_waiting=value)


def _kubeai(value: float, context: BenchContext) -> Autoscaler:
    return KubeAI(context.bounds, target_requests=value)


def _kpa(value: float, context: BenchContext) -> Autoscaler:
    return AibrixKpa(context.bounds, target_kv=value)


def _llmd(value: float, context: BenchContext) -> Autoscaler:
    return LlmdSaturation(context.bounds, kv_threshold=0.8 * value, queue_threshold=5.0 * value)


def baselines(replicas_at_peak: int) -> tuple[Baseline, ...]:
    peak = replicas_at_peak
    return (
        Baseline(
            "static-peak",
            "replicas",
            peak,
            tuple(float(n) for n in range(max(1, peak - 4), 2 * peak + 1)),
            _static,
            monotone=True,
        ),
        Baseline("hpa-waiting", "targetWaiting", 5.0, (8.0, 5.0, 3.0, 2.0, 1.0, 0.5, 0.25, 0.1), _hpa),
        Baseline(
            "kubeai",
            "targetRequests",
            100.0,
            (100.0, 80.0, 64.0, 48.0, 40.0, 32.0, 28.0, 24.0, 20.0, 16.0, 12.0, 8.0),
            _kubeai,
        ),
        Baseline(
            "aibrix-kpa",
            "targetKV",
            0.5,
            (0.5, 0.3, 0.2, 0.15, 0.12, 0.1, 0.09, 0.08, 0.07, 0.06, 0.05, 0.04, 0.03),
            _kpa,
        ),
        Baseline(
            "llm-d-saturation",
            "thresholdScale",
            1.0,
            (1.0, 0.7, 0.5, 0.45, 0.4, 0.35, 0.3, 0.25, 0.2, 0.15, 0.1, 0.05),
            _llmd,
        ),
    )


_CONTEXT: BenchContext | None = None


def _context() -> BenchContext:
    if _CONTEXT is None:
        raise RuntimeError("the benchmark context is set before the worker pool starts")
    return _CONTEXT


def _run(autoscaler: Autoscaler, variant: str, setting: str, *, stop_when_infeasible: bool) -> RunResult:
    context = _context()
    # Static provisioning and the clairvoyant schedule start with their own fleets; every
    # autoscaler with the same initial one.
    initial = context.initial_replicas
    if isinstance(autoscaler, StaticPeak):
        initial = autoscaler.replicas
    elif isinstance(autoscaler, Clairvoyant):
        initial = autoscaler.wanted(0.0)
    # Thrifty's data path is its router, which holds what every replica's cap refuses; the bound
    # gets the same path, so that it stays a bound. The published autoscalers sit behind a plain
    # Service or gateway that sends every request straight to an engine.
    behind_router = isinstance(autoscaler, Clairvoyant) or (
        isinstance(autoscaler, ThriftyPolicy) and autoscaler.policy.cap_enforced_by_router
    )
    return run_policy(
        context.requests,
        context.config,
        autoscaler,
        variant=variant,
        setting=setting,
        initial_replicas=initial,
        startup_s=context.startup_s,
        slo=context.slo,
        goal=context.goal,
        stop_when_infeasible=stop_when_infeasible,
        progress=print_progress,
        step_time_scale=context.step_time_scale,
        router_queue=behind_router,
    )


def _meets_goal(result: RunResult, goal: float) -> bool:
    return result.completed and result.slo_attainment >= goal


def run_thrifty() -> list[RunResult]:
    context = _context()
    return [_run(ThriftyPolicy(context.thrifty), "default", "", stop_when_infeasible=False)]


CLAIRVOYANT_REPLAYS = 4
"""At most this many replays of the bound, each raising the minutes the one before missed."""


def run_clairvoyant() -> list[RunResult]:
    context = _context()
    print_progress("clairvoyant: sizing every minute by simulation ...")
    max_replicas = context.bounds.max_replicas * 2
    per_minute = fewest_replicas_per_minute(
        context.requests,
        context.config,
        context.slo,
        max_replicas=max_replicas,
        step_time_scale=context.step_time_scale,
    )
    for replay in range(1, CLAIRVOYANT_REPLAYS + 1):
        schedule = Clairvoyant(
            per_minute, startup_s=context.startup_s, min_replicas=context.bounds.min_replicas
        )
        result = _run(schedule, "bound", f"replays={replay}", stop_when_infeasible=False)
        raised = raise_missed(per_minute, result.failed_minutes, max_replicas=max_replicas)
        if result.slo_attainment >= context.goal or raised == per_minute:
            break
        print_progress(f"clairvoyant: minutes {result.failed_minutes} missed; one more replica in each")
        per_minute = raised
    return [result]


def run_baseline(kind: str) -> list[RunResult]:
    """The default run, the grid candidates tried, and the tuned run (marked `tuned`)."""
    context = _context()
    baseline = next(b for b in baselines(context.replicas_at_peak) if b.kind == kind)
    # The published default stops, as a grid candidate does, once it can no longer reach the goal:
    # its table row then says by which minute it missed, and the hour it would have run is saved.
    default = _run(
        baseline.build(baseline.default, context),
        "default",
        baseline.setting(baseline.default),
        stop_when_infeasible=True,
    )
    results = [default]
    tuned: RunResult | None = None
    if baseline.default not in baseline.grid:
        raise ValueError(f"{kind}: the default {baseline.default:g} belongs in the grid")
    grid = baseline.grid
    if baseline.monotone and not _meets_goal(default, context.goal):
        grid = grid[grid.index(baseline.default) :]
        print_progress(f"{kind}: the default misses the goal, so every cheaper setting does too")
    for value in grid:
        if value == baseline.default:
            candidate = default
        else:
            candidate = _run(
                baseline.build(value, context), "grid", baseline.setting(value), stop_when_infeasible=True
            )
            results.append(candidate)
        print_progress(
            f"{kind} grid {baseline.setting(value)}: "
            + (
                f"{candidate.gpu_hours:.2f} GPU-h, attainment {candidate.slo_attainment:.3f}"
                if candidate.completed
                else f"missed the SLO by minute {int((candidate.stopped_at_s or 0) // 60)}"
            )
        )
        if _meets_goal(candidate, context.goal):
            tuned = candidate
            break
    if tuned is None:
        generous = baseline.grid[-1]
        tuned = _run(
            baseline.build(generous, context), "grid", baseline.setting(generous), stop_when_infeasible=False
        )
        results.append(tuned)
    results.append(dataclasses.replace(tuned, variant="tuned"))
    return results


def _job(name: str) -> list[RunResult]:
    if name == "thrifty":
        return run_thrifty()
    if name == "clairvoyant":
        return run_clairvoyant()
    return run_baseline(name)


POLICIES = (
    "static-peak",
    "clairvoyant",
    "thrifty",
    "llm-d-saturation",
    "kubeai",
    "aibrix-kpa",
    "hpa-waiting",
)
"""Longest first (as measured on the conversation trace: the static grid's late misses, the
clairvoyant's per-minute sizing, Thrifty's planner), so two workers finish about together."""


def run_all(context: BenchContext, *, workers: int, only: Sequence[str] = POLICIES) -> list[RunResult]:
    """Every run, spread over `workers` processes (1 runs in this process)."""
    global _CONTEXT
    _CONTEXT = context
    names = [name for name in POLICIES if name in only]
    results: list[RunResult] = []
    if workers <= 1:
        for name in names:
            results.extend(_job(name))
        return results
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for batch in pool.imap_unordered(_job, names):
            results.extend(batch)
    return results
