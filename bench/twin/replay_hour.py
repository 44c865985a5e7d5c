"""An hour of the Azure LLM conversation trace, replayed in fast-forward on Llama-3.1-8B H100 twins."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from measured_points import REPO, llama_8b_on_h100

from thrifty.twin import EngineConfig, Simulation, load_azure_trace

TRACE_NAME = "azure-llm-2023-conv.csv"
HOUR_S = 3600.0
PERCENTILES = (50, 90, 99)
PROGRESS_EVERY_S = 300.0


def default_trace() -> Path:
    """bench/traces/ when the repository carries its own copy, else the shared traces folder."""
    local = REPO / "bench" / "traces" / TRACE_NAME
    return local if local.exists() else REPO.parent / "shared" / "traces" / TRACE_NAME


@dataclass(frozen=True)
class HourReplay:
    """What one replay measured, in wall-clock and simulated time."""

    trace: Path
    twins: int
    config: EngineConfig
    requests: int
    last_arrival_s: float
    rejected: int
    prompt_tokens: int
    output_tokens: int
    load_wall_s: float
    """Reading and parsing the trace."""
    simulate_wall_s: float
    """Running the simulation to the last token."""
    simulated_s: float
    """Simulated time from the first arrival to the last token."""
    ttft_s: dict[int, float]
    """Arrival to first token, per request, by percentile."""
    itl_s: dict[int, float]
    """Every gap between two tokens of a request (vLLM's inter_token_latency_seconds), by percentile."""
    e2e_s: dict[int, float]
    gpu_hours: float
    preemptions: int

    @property
    def wall_s(self) -> float:
        return self.load_wall_s + self.simulate_wall_s


def replay_hour(trace: Path, *, twins: int = 4, progress: Callable[[str], None] | None = None) -> HourReplay:
    """Replay the trace's first hour round-robin on `twins` loaded twins with vLLM's default flags."""
    started = time.perf_counter()
    requests = sorted(load_azure_trace(trace, duration_s=HOUR_S), key=lambda r: r.arrival_s)
    loaded = time.perf_counter()
    config = llama_8b_on_h100()
    simulation = Simulation()
    for _ in range(twins):
        simulation.add_twin(config, at=0.0, preloaded=True)
    next_report = PROGRESS_EVERY_S
    for count, request in enumerate(requests):
        if progress is not None and request.arrival_s >= next_report:
            progress(
                f"replay: {next_report / 60:3.0f}/{HOUR_S / 60:.0f} simulated min, {count:6d} requests, "
                f"{time.perf_counter() - started:5.1f} s"
            )
            next_report += PROGRESS_EVERY_S
        simulation.submit(request)
    result = simulation.finish()
    finished = time.perf_counter()
    if progress is not None:
        progress(f"replay: done, {len(requests)} requests, {finished - started:5.1f} s")
    served = result.served()
    return HourReplay(
        trace=trace,
        twins=twins,
        config=config,
        requests=len(requests),
        last_arrival_s=requests[-1].arrival_s if requests else 0.0,
        rejected=len(requests) - len(served),
        prompt_tokens=sum(r.prompt_tokens for r in served),
        output_tokens=sum(r.output_tokens for r in served),
        load_wall_s=loaded - started,
        simulate_wall_s=finished - loaded,
        simulated_s=result.end_s,
        ttft_s={q: result.ttft_percentile(q) for q in PERCENTILES},
        itl_s={q: result.itl_tokens.percentile(q) for q in PERCENTILES},
        e2e_s={q: result.e2e_percentile(q) for q in PERCENTILES},
        gpu_hours=result.gpu_hours(),
        preemptions=sum(twin.engine.preemptions_total for twin in simulation.twins),
    )
