"""A PNG of the twin's decode step time against the H100's, across batch sizes, one line per context."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on benchmark machines
import matplotlib.pyplot as plt
import matplotlib.ticker
from measured_points import Point, decode_point, twin_step_ms

from thrifty.twin import StepCostModel


def plot_decode(points: list[Point], model: StepCostModel, path: Path, *, title: str) -> None:
    """Measured decode steps as dots, the twin as a line over every batch size up to the largest measured."""
    decode = [p for p in points if p.kind == "decode"]
    contexts = sorted({p.context for p in decode})
    figure, axes = plt.subplots(figsize=(8, 5.5))
    for index, context in enumerate(contexts):
        colour = f"C{index}"
        measured = sorted((p.batch, p.measured_ms) for p in decode if p.context == context)
        largest = measured[-1][0]
        batches = sorted({round(2 ** (k / 8)) for k in range(8 * largest.bit_length())} | {largest})
        batches = [b for b in batches if b <= largest]
        twin = [twin_step_ms(model, decode_point(b, context)) for b in batches]
        axes.plot(batches, twin, "-", color=colour, linewidth=1.6, label=f"context {context}")
        axes.plot([b for b, _ in measured], [ms for _, ms in measured], "o", color=colour, markersize=5)
    axes.set_xscale("log", base=2)
    ticks = [2**k for k in range(max(p.batch for p in decode).bit_length())]
    axes.set_xticks(ticks, labels=[str(t) for t in ticks])
    axes.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    axes.set_xlabel("decode batch (sequences)")
    axes.set_ylabel("step time (ms)")
    axes.set_title(title, fontsize=10)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="upper left", title="dots: H100, lines: twin", title_fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
