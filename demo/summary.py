"""The PNG the demo leaves behind: traffic per tier, replicas, caps and GPU-hours over the run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from demo.table import ModelRow
from demo.traffic import Result

Snapshot = tuple[float, Sequence[ModelRow]]
"""Seconds since the replay started, and every model's row at that moment."""


def write_summary(
    path: Path, snapshots: Sequence[Snapshot], results: Sequence[Result], *, bin_s: float = 10.0
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(13, 8))
    traffic, replicas, caps, hours = axes.flat

    answered = [r for r in results if r.status == 200]
    tiers = sorted({r.tier for r in answered})
    end = max((r.sent_s for r in results), default=0.0)
    bins = [i * bin_s for i in range(int(end // bin_s) + 1)]
    for tier in tiers:
        counts = Counter(int(r.sent_s // bin_s) for r in answered if r.tier == tier)
        traffic.plot(
            bins, [counts.get(i, 0) / bin_s for i in range(len(bins))], label=tier, drawstyle="steps-post"
        )
    escalated = sum(1 for r in answered if r.escalated_from)
    traffic.set(title=f"requests/s per tier ({len(answered)} answered, {escalated} escalated)", xlabel="s")
    traffic.legend()

    names = sorted({row.name for _, rows in snapshots for row in rows})
    for name in names:
        series = [
            (t, next(row for row in rows if row.name == name))
            for t, rows in snapshots
            if any(r.name == name for r in rows)
        ]
        times = [t for t, _ in series]
        replicas.plot(times, [row.replicas for _, row in series], label=name, drawstyle="steps-post")
        caps.plot(
            times,
            [row.cap if row.cap is not None else float("nan") for _, row in series],
            label=name,
            drawstyle="steps-post",
        )
        hours.plot(
            times,
            [row.gpu_hours if row.gpu_hours is not None else float("nan") for _, row in series],
            label=name,
        )
    replicas.set(title="replicas (control loop)", xlabel="s")
    caps.set(title="effective per-replica cap (router enforces)", xlabel="s")
    hours.set(title="GPU-hours (status.cost.gpuHours)", xlabel="s")
    for axis in (replicas, caps, hours):
        axis.legend()
    figure.suptitle("Thrifty demo on the testbed: Mooncake conversation trace through router 'assistant'")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
