"""The H100 step-time measurements as points the twin can price, and the twin's price of each.

Every figure the fit and the benchmark print for the twin comes from `twin_step_ms`, which asks the
twin's own `StepCostModel.step_seconds` (operator/thrifty/twin/step_cost.py): nothing here restates
the step-time formula.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thrifty.twin import EngineConfig, GpuCalibration, StepCostModel, engine_config_from_vllm_args

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
MEASUREMENTS = HERE / "h100-measurements.json"

H100 = "NVIDIA-H100-80GB-HBM3"
LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"
GOAL_PCT = 15.0
"""The twin's fidelity goal: every step time within 15% of the reference."""


@dataclass(frozen=True)
class Point:
    """One step: what it computes, and what the H100 took for it (NaN where not measured)."""

    kind: str
    """`decode`, `prefill-1seq` (one prompt) or `prefill-Nseq` (several 512-token prompts)."""
    label: str
    tokens: int
    """Tokens computed in the step."""
    sampled: int
    """Positions whose logits are computed: every decoding sequence, each prompt's last token."""
    context_tokens: int
    """KV tokens the step reads or writes, summed over its sequences."""
    attention_pairs: int
    """(new token, context token) pairs: batch x context for decode, S(S+1)/2 per prompt of S."""
    batch: int
    """Sequences in the step."""
    context: int
    """Decode: each sequence's context; prefill: each prompt's length."""
    measured_ms: float = math.nan


def decode_point(batch: int, context: int, measured_ms: float = math.nan) -> Point:
    """`batch` sequences each decoding one token over a KV cache of `context` tokens."""
    cached = batch * context
    label = f"decode B={batch} ctx={context}"
    return Point("decode", label, batch, batch, cached, cached, batch, context, measured_ms)


def prefill_point(sequences: int, seq_len: int, measured_ms: float = math.nan) -> Point:
    """`sequences` whole prompts of `seq_len` tokens in one pass, each sampling its last position."""
    tokens = sequences * seq_len
    return Point(
        kind="prefill-1seq" if sequences == 1 else "prefill-Nseq",
        label=f"prefill {sequences}x{seq_len}",
        tokens=tokens,
        sampled=sequences,
        context_tokens=tokens,
        attention_pairs=sequences * seq_len * (seq_len + 1) // 2,
        batch=sequences,
        context=seq_len,
        measured_ms=measured_ms,
    )


def load_points(path: Path = MEASUREMENTS, variant: str = "compiled") -> tuple[list[Point], dict[str, Any]]:
    """The measured points of one variant ("compiled": vLLM-like fused kernels; "eager": plain ops)."""
    doc: dict[str, Any] = json.loads(path.read_text())
    points = [
        decode_point(p["batch"], p["context"], p["step_ms_median"])
        for p in doc["decode"]
        if p["status"] == "ok" and p.get("variant", "eager") == variant
    ]
    points += [
        prefill_point(p["sequences"], p["seq_len"], p["step_ms_median"])
        for p in doc["prefill"]
        if p["status"] == "ok" and p.get("variant", "eager") == variant
    ]
    return points, doc


def llama_8b_on_h100(calibration: GpuCalibration | None = None) -> EngineConfig:
    """The measured setting as a twin configuration: Llama-3.1-8B, bf16, one H100.

    Without `calibration` the twin loads its committed H100 calibration file.
    """
    return engine_config_from_vllm_args({"model": LLAMA_8B}, gpu_product=H100, calibration=calibration)


def twin_step_ms(model: StepCostModel, point: Point) -> float:
    """The twin's duration of the point's step, in milliseconds."""
    seconds = model.step_seconds(
        tokens=point.tokens,
        sampled=point.sampled,
        context_tokens=point.context_tokens,
        attention_pairs=point.attention_pairs,
        decoding=point.batch if point.kind == "decode" else 0,
    )
    return 1e3 * seconds


def error_pct(model_ms: float, reference_ms: float) -> float:
    """(model - reference) / reference, in percent."""
    return 100.0 * (model_ms - reference_ms) / reference_ms


def find(points: list[Point], label: str) -> Point:
    """The measured point with this label."""
    for point in points:
        if point.label == label:
            return point
    raise KeyError(f"no measured point {label!r} in {MEASUREMENTS.name}")
