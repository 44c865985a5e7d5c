"""Fit the twin's step-time coefficients to the H100 measurements; write the calibration files.

The form fitted is the twin's own: every candidate is priced by operator/thrifty/twin/step_cost.py
through a calibration object, never by a copy of its formula here,

    t_step = c0 + pnorm_p(weight read, matmul FLOPs) + max(KV read, attention FLOPs)

c0, eta_bw and eta_f minimise the sum of squared relative errors over every measured point of one
variant (decode steps and prefill passes together). For fixed eta_bw, eta_f and p the best c0 >= 0 has a
closed form (a weighted mean), so the fit is a grid over the two efficiencies, refined twice around the
best cell: no optimiser to trust and no starting guess to depend on. That is done for each exponent p of
`EXPONENTS`, and the p kept is the one with the smallest largest error (the fidelity goal's own measure).

For the record it also fits two earlier forms to the same points (`reference_forms`): the single
`c0 + max(memory, compute)` the twin used before, and DESIGN.md's one-line roofline.

Usage:
    python3 bench/twin/fit.py            # fit, error per point, the exponents tried, the earlier forms
    python3 bench/twin/fit.py --write    # also write both calibration files and h100-measurements.csv
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from measured_points import (
    GOAL_PCT,
    H100,
    HERE,
    MEASUREMENTS,
    REPO,
    Point,
    error_pct,
    llama_8b_on_h100,
    load_points,
    twin_step_ms,
)

from thrifty.twin import EngineConfig, GpuCalibration, StepCostModel, step_cost_model

CALIBRATIONS = REPO / "operator" / "thrifty" / "twin" / "calibration"
H100_CALIBRATION = CALIBRATIONS / f"{H100}.json"
L4_CALIBRATION = CALIBRATIONS / "NVIDIA-L4.json"
MEASUREMENTS_CSV = HERE / "h100-measurements.csv"

# H100 SXM5 80GB datasheet figures; the fitted efficiencies are relative to these.
BANDWIDTH_BYTES_PER_S = 3.35e12
FLOPS_BF16 = 989e12
FLOPS_FP8 = 1979e12
EXPONENTS = [1.5 + 0.25 * i for i in range(11)]  # 1.5 .. 4.0

# The efficiency grid: 0.30 .. 1.00 in steps of 0.02, then finer around the best cell twice.
_PASSES = [(0.35, 0.02), (0.025, 0.0025), (0.005, 0.0005)]
# Maps (eta_bw, eta_f) to each point's step seconds without c0.
Roofs = Callable[[float, float], list[float]]


@dataclass(frozen=True)
class Fit:
    name: str
    c0_s: float
    eta_bw: float
    eta_f: float
    exponent: float | None
    """The matmul p-norm's p (None for a form without one)."""
    step_ms: list[float]
    """The fitted form's duration of each point, in order."""
    errors_pct: list[float]

    @property
    def worst_pct(self) -> float:
        return max(abs(e) for e in self.errors_pct)

    @property
    def rms_pct(self) -> float:
        return math.sqrt(sum(e * e for e in self.errors_pct) / len(self.errors_pct))

    def describe(self) -> str:
        exponent = "" if self.exponent is None else f", p = {self.exponent:g}"
        return (
            f"c0 = {self.c0_s * 1e3:.3f} ms, eta_bw = {self.eta_bw:.4f} "
            f"({self.eta_bw * BANDWIDTH_BYTES_PER_S / 1e12:.2f} TB/s), eta_f = {self.eta_f:.4f} "
            f"({self.eta_f * FLOPS_BF16 / 1e12:.0f} TFLOP/s){exponent}"
        )


def best_c0(roofs_s: list[float], measured_s: list[float]) -> tuple[float, float]:
    """The c0 >= 0 minimising sum(((c0 + roof - t) / t)^2), and that sum."""
    numerator = sum((t - m) / (t * t) for m, t in zip(roofs_s, measured_s, strict=True))
    denominator = sum(1.0 / (t * t) for t in measured_s)
    c0 = max(0.0, numerator / denominator)
    loss = sum(((c0 + m - t) / t) ** 2 for m, t in zip(roofs_s, measured_s, strict=True))
    return c0, loss


def least_squares(roofs: Roofs, measured_s: list[float]) -> tuple[float, float, float]:
    """(c0, eta_bw, eta_f) minimising the squared relative error; efficiencies to 4 decimals."""
    best = (math.inf, 0.65, 0.65)
    for half_width, step in _PASSES:
        centre_bw, centre_f = best[1], best[2]
        for eta_bw in _grid(centre_bw, half_width, step):
            for eta_f in _grid(centre_f, half_width, step):
                _, loss = best_c0(roofs(eta_bw, eta_f), measured_s)
                if loss < best[0]:
                    best = (loss, eta_bw, eta_f)
    eta_bw, eta_f = round(best[1], 4), round(best[2], 4)
    c0, _ = best_c0(roofs(eta_bw, eta_f), measured_s)
    return round(c0, 6), eta_bw, eta_f


def _grid(centre: float, half_width: float, step: float) -> list[float]:
    count = round(2 * half_width / step)
    values = (centre - half_width + step * i for i in range(count + 1))
    return [v for v in values if 0.05 <= v <= 1.0]


def datasheet_h100(memory_bytes: int) -> GpuCalibration:
    """The H100's datasheet peaks, with placeholder efficiencies for the fit to replace."""
    return GpuCalibration(
        gpu=H100,
        memory_bytes=memory_bytes,
        bandwidth_bytes_per_s=BANDWIDTH_BYTES_PER_S,
        flops_bf16=FLOPS_BF16,
        flops_fp8=FLOPS_FP8,
        c0_s=0.0,
        eta_bw=1.0,
        eta_f=1.0,
        source="being fitted",
    )


def twin_model(config: EngineConfig, **coefficients: float) -> StepCostModel:
    """The twin's step-cost model of `config` with some calibration coefficients replaced."""
    calibration = config.gpu.model_copy(update=coefficients)
    return step_cost_model(dataclasses.replace(config, gpu=calibration))


def fit_twin(points: list[Point], config: EngineConfig, exponent: float) -> Fit:
    """The twin's own form with matmul norm exponent `exponent`."""
    measured_s = [p.measured_ms / 1e3 for p in points]

    def roofs(eta_bw: float, eta_f: float) -> list[float]:
        model = twin_model(config, c0_s=0.0, eta_bw=eta_bw, eta_f=eta_f, matmul_norm_exponent=exponent)
        return [twin_step_ms(model, p) / 1e3 for p in points]

    c0, eta_bw, eta_f = least_squares(roofs, measured_s)
    model = twin_model(config, c0_s=c0, eta_bw=eta_bw, eta_f=eta_f, matmul_norm_exponent=exponent)
    step_ms = [twin_step_ms(model, p) for p in points]
    errors = [error_pct(t, p.measured_ms) for t, p in zip(step_ms, points, strict=True)]
    return Fit("twin (step_cost.py)", c0, eta_bw, eta_f, exponent, step_ms, errors)


def reference_forms(points: list[Point], config: EngineConfig) -> list[Fit]:
    """Earlier forms, fitted the same way, for comparison; each term's time at peak comes from the twin."""
    peak = twin_model(config, c0_s=0.0, eta_bw=1.0, eta_f=1.0)
    measured_s = [p.measured_ms / 1e3 for p in points]
    total_params = config.architecture.total_params
    flops_peak = config.gpu.flops_bf16

    def memory(p: Point) -> float:
        return peak.weight_read_s + peak.kv_read_s_per_token * p.context_tokens

    def single_max(eta_bw: float, eta_f: float) -> list[float]:
        return [
            max(
                memory(p) / eta_bw,
                (
                    peak.linear_s_per_token * p.tokens
                    + peak.head_s_per_sample * p.sampled
                    + peak.attention_s_per_pair * p.attention_pairs
                )
                / eta_f,
            )
            for p in points
        ]

    def design_one_line(eta_bw: float, eta_f: float) -> list[float]:
        return [max(memory(p) / eta_bw, 2 * total_params * p.tokens / flops_peak / eta_f) for p in points]

    forms: list[tuple[str, Roofs]] = [
        ("before: c0 + max(memory, compute) with attention FLOPs", single_max),
        ("DESIGN.md one line: 2*P*tokens, no attention FLOPs", design_one_line),
    ]
    fits = []
    for name, roofs in forms:
        c0, eta_bw, eta_f = least_squares(roofs, measured_s)
        step_ms = [1e3 * (c0 + r) for r in roofs(eta_bw, eta_f)]
        errors = [error_pct(t, p.measured_ms) for t, p in zip(step_ms, points, strict=True)]
        fits.append(Fit(name, c0, eta_bw, eta_f, None, step_ms, errors))
    return fits


def print_points(points: list[Point], fitted: Fit, before: Fit) -> None:
    print(f"\n{'point':26s} {'measured ms':>12s} {'twin ms':>9s} {'error %':>8s}   {'before: max()':>13s}")
    for p, model, err, old in zip(points, fitted.step_ms, fitted.errors_pct, before.errors_pct, strict=True):
        flag = "  <-- beyond 15%" if abs(err) > GOAL_PCT else ""
        print(f"{p.label:26s} {p.measured_ms:12.3f} {model:9.3f} {err:+8.1f}   {old:+12.1f}%{flag}")
    worst: dict[str, float] = {}
    for p, err in zip(points, fitted.errors_pct, strict=True):
        worst[p.kind] = max(worst.get(p.kind, 0.0), abs(err))
    print("largest |error| %: " + ", ".join(f"{k} {v:.1f}" for k, v in worst.items()))


def write_outputs(doc: dict[str, Any], points: list[Point], fitted: Fit, variant: str) -> None:
    meta = doc["meta"]
    coefficients: dict[str, float] = {
        "c0_s": fitted.c0_s,
        "eta_bw": fitted.eta_bw,
        "eta_f": fitted.eta_f,
    }
    if fitted.exponent is not None:
        coefficients["matmul_norm_exponent"] = fitted.exponent
    h100 = datasheet_h100(int(meta["gpu_memory_bytes"])).model_copy(
        update={
            **coefficients,
            "source": (
                "c0_s, eta_bw, eta_f, matmul_norm_exponent: bench/twin/fit.py, least squares on relative "
                f"error of the step_cost.py form over {len(points)} decode-step and prefill timings "
                f"({variant} variant, CUDA graphs) of a Llama-3.1-8B-shaped bf16 decoder, PyTorch "
                f"{meta['torch']}, on one {meta['gpu_name']}, {str(meta['date_utc'])[:10]}; the exponent "
                f"is the one of {EXPONENTS[0]:g}..{EXPONENTS[-1]:g} with the smallest largest error; "
                f"largest error {fitted.worst_pct:.1f}%, rms {fitted.rms_pct:.1f}%; GPU time only, no vLLM "
                "host overhead in c0; raw data bench/twin/h100-measurements.json. memory_bytes: torch "
                "total_memory of that GPU. bandwidth and FLOPs: H100 SXM5 datasheet (3.35 TB/s; 989 and "
                "1979 TFLOP/s dense)."
            ),
        }
    )
    _write_calibration(
        H100_CALIBRATION, h100.model_dump(exclude={"interconnect_bytes_per_s", "allreduce_latency_s"})
    )

    l4: dict[str, Any] = json.loads(L4_CALIBRATION.read_text())
    l4.update(coefficients)
    l4["source"] = (
        "Not measured on an L4: its datasheet peaks scaled by the efficiencies measured on the H100. "
        "c0_s, eta_bw, eta_f, matmul_norm_exponent: copied from the H100 fit by bench/twin/fit.py --write "
        f"({H100}.json); GDDR6 and a smaller chip may reach other fractions, so re-fit on a real L4 "
        "before trusting L4 step times. memory_bytes: 23034 MiB, what nvidia-smi and gpu-feature-discovery "
        "report for the 24 GB L4 (testbed/nodes.yaml). bandwidth, flops_bf16 and flops_fp8 (dense, half "
        "the with-sparsity figures): NVIDIA L4 Tensor Core GPU datasheet (300 GB/s GDDR6; 242 TFLOPS bf16 "
        "and 485 TFLOPS fp8 with sparsity). interconnect_bytes_per_s: PCIe Gen4 x16 (no NVLink on L4), "
        "about 25 GB/s achieved of 32 GB/s."
    )
    _write_calibration(L4_CALIBRATION, l4)

    with MEASUREMENTS_CSV.open("w", newline="") as handle:
        writer = csv.writer(handle)
        header = ["kind", "label", "tokens", "sampled", "context_tokens", "attention_pairs"]
        writer.writerow([*header, "measured_ms", "twin_ms", "error_pct"])
        for p, model, err in zip(points, fitted.step_ms, fitted.errors_pct, strict=True):
            row = [p.kind, p.label, p.tokens, p.sampled, p.context_tokens, p.attention_pairs]
            writer.writerow([*row, f"{p.measured_ms:.4f}", f"{model:.4f}", f"{err:.2f}"])
    written = [H100_CALIBRATION, L4_CALIBRATION, MEASUREMENTS_CSV]
    print("\nwrote " + ", ".join(str(path.relative_to(REPO)) for path in written))


def _write_calibration(path: Path, data: dict[str, Any]) -> None:
    GpuCalibration.model_validate(data)  # never commit a file the twin would refuse
    ordered = {key: value for key, value in data.items() if key != "source"} | {"source": data["source"]}
    path.write_text(json.dumps(ordered, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--measurements", type=Path, default=MEASUREMENTS)
    parser.add_argument(
        "--variant",
        default="compiled",
        choices=["compiled", "eager"],
        help="compiled: norms/RoPE/SiLU fused by torch.compile as in vLLM (default); eager: plain ops",
    )
    parser.add_argument("--write", action="store_true", help="write the calibration files and the CSV")
    args = parser.parse_args()
    points, doc = load_points(args.measurements, args.variant)
    config = llama_8b_on_h100(datasheet_h100(int(doc["meta"]["gpu_memory_bytes"])))

    print(f"twin form fitted to {len(points)} points ({args.variant}), for each matmul norm exponent p:")
    fits = [fit_twin(points, config, exponent) for exponent in EXPONENTS]
    for candidate in fits:
        print(f"  {candidate.describe()}; rms {candidate.rms_pct:.2f}%, largest {candidate.worst_pct:.1f}%")
    fitted = min(fits, key=lambda f: (round(f.worst_pct, 1), f.rms_pct))
    before, design = reference_forms(points, config)
    print(f"kept: {fitted.describe()} (smallest largest error)")
    print_points(points, fitted, before)

    print("\nearlier forms, fitted to the same points (the twin uses neither):")
    for other in (before, design):
        print(f"  {other.name}: {other.describe()}; rms {other.rms_pct:.2f}%, largest {other.worst_pct:.1f}%")
    if args.write:
        write_outputs(doc, points, fitted, args.variant)
    summary = {
        "max_error_pct_vs_h100": round(fitted.worst_pct, 1),
        "rms_error_pct_vs_h100": round(fitted.rms_pct, 2),
        "c0_s": fitted.c0_s,
        "eta_bw": fitted.eta_bw,
        "eta_f": fitted.eta_f,
        "matmul_norm_exponent": fitted.exponent,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
