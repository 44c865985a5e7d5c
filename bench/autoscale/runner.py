"""One replay of the trace under one autoscaler: the event loop, SLO bookkeeping, the result.

SLO attainment, as reported everywhere in this benchmark: the fraction of one-minute windows
(aligned on whole minutes of the replay, from its start until the last request finishes, counting
only windows in which some request got its first token or some token was emitted) whose TTFT p95
and ITL p95 both meet the SLO. TTFT counts in the window of a request's first token, ITL in the
window of each token, as Prometheus histograms would. A request-level figure is reported beside
it: the fraction of requests whose own TTFT and mean inter-token gap both meet the SLO.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench.autoscale.cluster import SimCluster
from bench.autoscale.policies.base import Autoscaler

from thrifty.twin import EngineConfig, TraceRequest

WINDOW_S = 60.0
SERIES_STEP_S = 30.0
WARMUP_S = 60.0


@dataclass(frozen=True)
class Slo:
    ttft_p95_s: float = 2.0
    itl_p95_s: float = 0.050


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    time_s: float
    replicas: int
    """The replica count the autoscaler asks for."""
    gpus: int
    """Replicas holding a GPU (starting ones included, draining ones not)."""
    utilization: float
    """Mean over ready replicas of running requests / the replica's batch limit (cap or flag)."""
    kv_usage: float
    cap: int
    ttft_p95_s: float | None
    itl_p95_s: float | None


@dataclass
class RunResult:
    policy: str
    variant: str
    """`default`, `tuned` or `grid` (a tuning candidate)."""
    setting: str
    """The tuned parameter and its value, e.g. `targetRequests=40`."""
    gpu_hours: float
    slo_attainment: float
    """Fraction of one-minute windows meeting both p95 SLOs (see module doc)."""
    request_attainment: float
    windows: int
    failed_windows: int
    restarts: int
    """Rolling restarts of the engine (changes of --max-num-seqs or --max-num-batched-tokens)."""
    engine_tokens: int
    """The --max-num-batched-tokens the replicas ran with at the end."""
    decisions: int
    """Evaluations that changed replicas, the effective cap or the engine flag."""
    completed: bool
    """False when the run stopped early because it could no longer reach the attainment goal."""
    stopped_at_s: float | None
    ttft_p95_s: float
    itl_p95_s: float
    wall_s: float
    series: list[SeriesPoint] = field(default_factory=list)
    notes: list[tuple[float, str]] = field(default_factory=list)
    failed_minutes: list[int] = field(default_factory=list)
    """The minutes (0 is the replay's first) whose window missed the SLO."""


def _ready_utilization(cluster: SimCluster, now: float) -> tuple[float, float]:
    ready = cluster.ready(now)
    if not ready:
        return 0.0, 0.0
    util = sum(t.engine.num_running / max(1, cluster.limit(t)) for t in ready) / len(ready)
    kv = sum(t.engine.kv_usage for t in ready) / len(ready)
    return util, kv


def run_policy(
    requests: Sequence[TraceRequest],
    config: EngineConfig,
    autoscaler: Autoscaler,
    *,
    variant: str,
    setting: str,
    initial_replicas: int,
    startup_s: float,
    slo: Slo,
    goal: float = 0.99,
    stop_when_infeasible: bool = False,
    progress: Callable[[str], None] | None = None,
    step_time_scale: float = 1.0,
    router_queue: bool = False,
) -> RunResult:
    """Replay `requests` with `autoscaler` in charge, starting from `initial_replicas` loaded ones;
    `router_queue`: behind Thrifty's router (cluster.py)."""
    began = time.monotonic()
    cluster = SimCluster(
        config,
        startup_s=startup_s,
        ttft_slo_s=slo.ttft_p95_s,
        itl_slo_s=slo.itl_p95_s,
        step_time_scale=step_time_scale,
        router_queue=router_queue,
    )
    cluster.start(initial_replicas)
    label = f"{autoscaler.name}/{variant} {setting}".strip()
    trace_end = math.ceil(requests[-1].arrival_s / WINDOW_S) * WINDOW_S
    expected_windows = int(trace_end / WINDOW_S)
    allowed_failures = math.floor((1 - goal) * expected_windows + 1e-9)

    scrape_step = cluster.scrape_interval_s
    control_step = autoscaler.period_s
    # Every autoscaler starts acting after one minute of metrics, as it would after a restart of a
    # running system (the live ones keep that history in Prometheus or in their own state).
    counters = {"scrape": 0, "control": math.ceil(WARMUP_S / control_step), "window": 1, "series": 0}
    steps = {"scrape": scrape_step, "control": control_step, "window": WINDOW_S, "series": SERIES_STEP_S}
    windows = failed = decisions = 0
    failed_minutes: list[int] = []
    series: list[SeriesPoint] = []
    notes: list[tuple[float, str]] = []
    stopped_at: float | None = None

    def judge(end: float) -> bool:
        nonlocal windows, failed
        ttft = cluster.ttft.percentile(end - WINDOW_S, end, 95)
        itl = cluster.itl.percentile(end - WINDOW_S, end, 95)
        if ttft is None and itl is None:
            return True
        windows += 1
        ok = (ttft is None or ttft <= slo.ttft_p95_s) and (itl is None or itl <= slo.itl_p95_s)
        if not ok:
            failed += 1
            failed_minutes.append(round(end / WINDOW_S) - 1)
        return ok

    def tick(now: float, kind: str) -> None:
        nonlocal decisions
        if kind == "scrape":
            if cluster.rollout_in_progress:
                cluster.reconcile(now)
            cluster.scrape(now)
        elif kind == "control":
            command = autoscaler.step(cluster, now)
            changed = command.replicas != cluster.target
            if command.cap is not None and command.cap != cluster.cap:
                cluster.set_cap(command.cap)
                changed = True
            flag = command.engine_flag if command.engine_flag is not None else cluster.engine_flag
            tokens = command.engine_tokens if command.engine_tokens is not None else cluster.engine_tokens
            if (flag, tokens) != (cluster.engine_flag, cluster.engine_tokens):
                cluster.set_engine(flag, tokens, now)
                changed = True
            if command.replicas != cluster.target:
                cluster.scale_to(command.replicas, now)
            if changed:
                decisions += 1
                if command.note:
                    notes.append((now, command.note))
        elif kind == "window":
            judge(now)
            if progress is not None and int(now) % 600 == 0:
                progress(
                    f"{label}: minute {int(now // 60)}/{expected_windows}, {cluster.target} replicas, "
                    f"{failed} failed windows, {time.monotonic() - began:.0f}s"
                )
        else:
            util, kv = _ready_utilization(cluster, now)
            series.append(
                SeriesPoint(
                    now,
                    cluster.target,
                    cluster.gpus(),
                    util,
                    kv,
                    cluster.cap,
                    cluster.ttft.percentile(now - WINDOW_S, now, 95),
                    cluster.itl.percentile(now - WINDOW_S, now, 95),
                )
            )

    def run_until(limit: float) -> bool:
        """Handle every tick up to `limit`; False once the run can no longer meet the goal."""
        while True:
            kind = min(counters, key=lambda k: (counters[k] * steps[k], k != "scrape"))
            moment = counters[kind] * steps[kind]
            if moment > limit:
                return True
            cluster.advance_to(moment)
            tick(moment, kind)
            counters[kind] += 1
            if stop_when_infeasible and failed > allowed_failures:
                return False

    feasible = True
    for request in requests:
        if not run_until(request.arrival_s):
            feasible = False
            stopped_at = cluster.now
            break
        cluster.submit(request)
    if feasible:
        feasible = run_until(trace_end)
        if not feasible:
            stopped_at = cluster.now
    end_s = cluster.finish()
    if feasible:
        end = math.ceil(end_s / WINDOW_S) * WINDOW_S
        moment = counters["window"] * WINDOW_S
        while moment <= end:
            judge(moment)
            moment += WINDOW_S

    tally = cluster.tally
    return RunResult(
        policy=autoscaler.name,
        variant=variant,
        setting=setting,
        gpu_hours=cluster.gpu_hours(end_s),
        slo_attainment=(windows - failed) / windows if windows else 1.0,
        request_attainment=tally.within_slo / tally.submitted if tally.submitted else 1.0,
        windows=windows,
        failed_windows=failed,
        restarts=cluster.rollouts,
        engine_tokens=cluster.engine_tokens,
        decisions=decisions,
        completed=feasible,
        stopped_at_s=stopped_at,
        ttft_p95_s=cluster.ttft.overall_percentile(95) or 0.0,
        itl_p95_s=cluster.itl.overall_percentile(95) or 0.0,
        wall_s=time.monotonic() - began,
        series=series,
        notes=notes,
        failed_minutes=failed_minutes,
    )


def print_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
