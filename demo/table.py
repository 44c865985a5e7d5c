"""The live table of the demo, as a pure function of what the cluster and the client saw."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from demo.traffic import Result


@dataclass(frozen=True)
class ModelRow:
    name: str
    gpus: str
    """GPUs per replica, e.g. `4xH100`."""
    ready: int
    replicas: int
    batch_utilization: float | None
    cap: int | None
    """The effective per-replica cap the router enforces (status.maxNumSeqs.effective)."""
    engine_cap: int | None
    gpu_hours: float | None
    usd_per_1m_tokens: float | None
    last_decision: str


@dataclass(frozen=True)
class TierRow:
    tier: str
    model: str
    ready_endpoints: int
    requests: int
    share: float
    escalated_in: int
    p50_latency_s: float | None


def _short_gpu(product: str) -> str:
    return product.replace("NVIDIA-", "").split("-")[0]


def model_row(body: dict[str, Any]) -> ModelRow:
    spec, status = body.get("spec") or {}, body.get("status") or {}
    gpu = (spec.get("resources") or {}).get("gpu") or {}
    caps = status.get("maxNumSeqs") or {}
    cost = status.get("cost") or {}
    decisions = status.get("decisions") or []
    last = ""
    if decisions:
        newest = decisions[0]
        last = f"{newest['action']} {newest.get('from')}→{newest.get('to')}: {newest.get('reason', '')}"
    return ModelRow(
        name=body["metadata"]["name"],
        gpus=f"{gpu.get('count', 1)}x{_short_gpu(gpu.get('product', '?'))}",
        ready=int(status.get("readyReplicas") or 0),
        replicas=int(status.get("replicas") or 0),
        batch_utilization=(status.get("utilization") or {}).get("batch"),
        cap=caps.get("effective"),
        engine_cap=caps.get("engine"),
        gpu_hours=cost.get("gpuHours"),
        usd_per_1m_tokens=cost.get("usdPer1MTokens"),
        last_decision=last,
    )


def tier_rows(router: dict[str, Any], results: Sequence[Result]) -> list[TierRow]:
    answered = [r for r in results if r.status == 200]
    rows = []
    for tier in (router.get("status") or {}).get("tiers") or []:
        mine = [r for r in answered if r.tier == tier["name"]]
        rows.append(
            TierRow(
                tier=tier["name"],
                model=tier["model"],
                ready_endpoints=int(tier.get("readyEndpoints") or 0),
                requests=len(mine),
                share=len(mine) / len(answered) if answered else 0.0,
                escalated_in=sum(1 for r in mine if r.escalated_from),
                p50_latency_s=statistics.median(r.latency_s for r in mine) if mine else None,
            )
        )
    return rows


def _number(value: float | int | None, form: str) -> str:
    return "-" if value is None else format(value, form)


def render(
    models: Sequence[ModelRow],
    tiers: Sequence[TierRow],
    *,
    elapsed_s: float,
    total_s: float,
    sent: int,
    answered: int,
    failed: int,
    width: int = 120,
) -> str:
    """The whole screen, as text."""
    lines = [
        f"Thrifty demo — replaying the Mooncake conversation trace through router 'assistant'   "
        f"{elapsed_s:5.0f}s / {total_s:.0f}s   sent {sent}  answered {answered}  failed {failed}",
        "",
        f"{'MODEL':<12} {'GPUS':<8} {'READY':>7} {'BATCH':>6} {'CAP':>9} {'GPU-H':>7} {'$/1M OUT':>9}  LAST DECISION",
    ]
    for m in models:
        cap = f"{_number(m.cap, 'd')}/{_number(m.engine_cap, 'd')}"
        utilization = "-" if m.batch_utilization is None else f"{m.batch_utilization:.0%}"
        line = (
            f"{m.name:<12} {m.gpus:<8} {m.ready:>3}/{m.replicas:<3} {utilization:>6} {cap:>9} "
            f"{_number(m.gpu_hours, '.3f'):>7} {_number(m.usd_per_1m_tokens, '.2f'):>9}  {m.last_decision}"
        )
        lines.append(line[:width])
    lines += [
        "",
        f"{'TIER':<8} {'MODEL':<12} {'ENDPOINTS':>9} {'REQUESTS':>9} {'SHARE':>6} {'ESCALATED':>9} {'P50':>7}",
    ]
    for t in tiers:
        p50 = "-" if t.p50_latency_s is None else f"{t.p50_latency_s:.2f}s"
        lines.append(
            f"{t.tier:<8} {t.model:<12} {t.ready_endpoints:>9} {t.requests:>9} {t.share:>6.0%} {t.escalated_in:>9} {p50:>7}"
        )
    lines += ["", "CAP: effective per-replica cap / engine --max-num-seqs.  GPU-H: GPU-hours so far.  "
              "$/1M OUT: dollars per million generated tokens (spec.cost)."]  # fmt: skip
    return "\n".join(lines)
