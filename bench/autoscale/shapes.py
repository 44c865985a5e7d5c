"""Seeded traces of named shapes in the Azure format (`TIMESTAMP,ContextTokens,GeneratedTokens`),
for the benchmark suite: traffic the policies were never tuned on.

    python -m bench.autoscale.shapes --out bench/traces/suite     # writes <shape>.csv for each

Each shape is an arrival rate over one hour (a non-homogeneous Poisson process, drawn by thinning)
and a request-size distribution (log-normal prompt and output lengths, each given by its median
and the spread of its logarithm). Rates are relative: the benchmark multiplies every trace so that
its busiest five minutes need the same number of replicas, so only the shape matters.

Sizes: the conversation sizes follow the medians of published chat traces (Azure LLM inference
2023 conversation: prompts around 1,000 tokens, outputs around 200); "chat" is short
interactive traffic; "rag" carries retrieved context (prompts of several thousand tokens, short
answers). None of them is fitted to a trace in this repository.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HOUR_S = 3600.0
MINUTE_S = 60.0
BASE_RATE = 4.0
"""Requests per second at relative rate 1 (the benchmark rescales; this only sets the file size)."""
START = datetime.datetime(2026, 1, 5, 9, 0, 0)


@dataclass(frozen=True)
class Sizes:
    """Log-normal request sizes, clipped to [1, `longest`] tokens."""

    prompt_median: float
    prompt_sigma: float
    output_median: float
    output_sigma: float
    longest: int = 32768

    def draw(self, rng: random.Random) -> tuple[int, int]:
        prompt = _clipped(rng.lognormvariate(math.log(self.prompt_median), self.prompt_sigma), self.longest)
        output = _clipped(rng.lognormvariate(math.log(self.output_median), self.output_sigma), self.longest)
        return prompt, output


def _clipped(value: float, longest: int) -> int:
    return max(1, min(longest, round(value)))


CONVERSATION = Sizes(prompt_median=1000, prompt_sigma=1.0, output_median=200, output_sigma=0.8)
CHAT = Sizes(prompt_median=250, prompt_sigma=0.7, output_median=150, output_sigma=0.7)
RAG = Sizes(prompt_median=5000, prompt_sigma=0.45, output_median=250, output_sigma=0.6)


@dataclass(frozen=True)
class Shape:
    name: str
    description: str
    rate: Callable[[float], float]
    """Relative arrival rate at a second of the hour (at most `peak`)."""
    peak: float
    sizes: Sizes


def _diurnal(t: float) -> float:
    # A day folded into the hour: trough at the ends, peak at the half hour, 10:1.
    return 0.55 - 0.45 * math.cos(2 * math.pi * t / HOUR_S)


def _flash_crowd(t: float) -> float:
    # Steady traffic; at minute 20 five times as much arrives within one minute, holds four
    # minutes, then decays back with a three-minute time constant.
    start, rise, hold = 20 * MINUTE_S, MINUTE_S, 4 * MINUTE_S
    if t < start:
        return 1.0
    if t < start + rise:
        return 1.0 + 4.0 * (t - start) / rise
    if t < start + rise + hold:
        return 5.0
    return 1.0 + 4.0 * math.exp(-(t - start - rise - hold) / (3 * MINUTE_S))


def _step(t: float) -> float:
    # Three times the traffic from minute 15 to minute 40.
    return 3.0 if 15 * MINUTE_S <= t < 40 * MINUTE_S else 1.0


def _on_off(t: float) -> float:
    # Six minutes of traffic, twelve idle, four times over: the idle gaps are where scaling to
    # zero pays.
    return 1.0 if t % (18 * MINUTE_S) < 6 * MINUTE_S else 0.0


def _wobble(t: float) -> float:
    # Flat traffic with a slow +-25% swing: little for an autoscaler to win.
    return 1.0 + 0.25 * math.sin(2 * math.pi * t / (40 * MINUTE_S))


SHAPES: dict[str, Shape] = {
    shape.name: shape
    for shape in (
        Shape("diurnal", "a day folded into the hour (10:1 peak to trough)", _diurnal, 1.0, CONVERSATION),
        Shape(
            "flash-crowd",
            "x5 within one minute at minute 20, decaying after 5 minutes",
            _flash_crowd,
            5.0,
            CONVERSATION,
        ),
        Shape("step", "x3 from minute 15 to minute 40", _step, 3.0, CONVERSATION),
        Shape("on-off", "6 minutes on, 12 idle, repeated", _on_off, 1.0, CONVERSATION),
        Shape("rag", "long retrieved prompts (median 5,000 tokens), flat +-25%", _wobble, 1.25, RAG),
        Shape("chat", "short chat (prompts 250, outputs 150 tokens), flat +-25%", _wobble, 1.25, CHAT),
    )
}


def generate(shape: Shape, *, seed: int, duration_s: float = HOUR_S) -> list[tuple[float, int, int]]:
    """(arrival second, prompt tokens, output tokens) of one draw of `shape`, in arrival order."""
    rng = random.Random(f"{shape.name}/{seed}")
    ceiling = shape.peak * BASE_RATE
    out: list[tuple[float, int, int]] = []
    clock = 0.0
    while True:
        clock += rng.expovariate(ceiling)
        if clock >= duration_s:
            return out
        relative = shape.rate(clock)
        if not 0.0 <= relative <= shape.peak + 1e-9:
            raise ValueError(f"shape {shape.name}: rate {relative} at {clock:.0f}s outside [0, {shape.peak}]")
        if rng.random() * shape.peak < relative:
            prompt, output = shape.sizes.draw(rng)
            out.append((clock, prompt, output))


def write_azure_csv(path: Path, rows: list[tuple[float, int, int]]) -> None:
    """The Azure trace's columns; timestamps with seven decimal places, as Azure writes them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["TIMESTAMP", "ContextTokens", "GeneratedTokens"])
        for seconds, prompt, output in rows:
            when = START + datetime.timedelta(seconds=seconds)
            writer.writerow([when.strftime("%Y-%m-%d %H:%M:%S.%f") + "0", prompt, output])


def write_suite(out: Path, *, seed: int, names: list[str] | None = None) -> dict[str, Path]:
    """Every shape (or `names`) as `<out>/<shape>.csv`."""
    unknown = sorted(set(names or ()) - SHAPES.keys())
    if unknown:
        raise ValueError(f"unknown shapes {', '.join(unknown)}: the suite has {', '.join(SHAPES)}")
    paths: dict[str, Path] = {}
    for name in names or list(SHAPES):
        path = out / f"{name}.csv"
        write_azure_csv(path, generate(SHAPES[name], seed=seed))
        paths[name] = path
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.autoscale.shapes", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    args = parser.parse_args(argv)
    for name, path in write_suite(args.out, seed=args.seed, names=args.shapes.split(",")).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
