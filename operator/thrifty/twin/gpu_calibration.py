"""Per-GPU coefficients of the step-time roofline, read from `calibration/<product>.json`.

One JSON file per GPU product (the value of the `nvidia.com/gpu.product` node label). Required keys:

    {"gpu": "NVIDIA-H100-80GB-HBM3",        # the product label; must match the file name
     "memory_bytes": 85520809984,           # memory of one GPU
     "bandwidth_bytes_per_s": 3.35e12,      # peak memory bandwidth (datasheet)
     "flops_bf16": 989.4e12,                # dense peak, no sparsity
     "flops_fp8": 1978.9e12,                # dense peak; also used for int8 weights
     "c0_s": 0.001,                         # fixed cost of one engine step (launches, scheduler, sampler)
     "eta_bw": 0.85,                        # achieved fraction of the bandwidth
     "eta_f": 0.7,                          # achieved fraction of the FLOPs
     "source": "where every figure came from"}

Optional keys: `matmul_norm_exponent` (how the weight matmuls blend their memory and compute
times, step_cost.py; default 3, the H100 fit), `interconnect_bytes_per_s` and `allreduce_latency_s`
(tensor parallelism), and any other keys a measurement wants to keep beside the fit (raw points,
fit residuals): they are ignored.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class CalibrationError(ValueError):
    """A calibration file is missing or does not hold what the twin needs."""


class GpuCalibration(BaseModel):
    """What the twin knows about one GPU product: datasheet peaks and fitted efficiencies."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    gpu: str = Field(min_length=1, description="GPU product label, e.g. NVIDIA-H100-80GB-HBM3.")
    memory_bytes: int = Field(gt=0, description="Memory of one GPU in bytes.")
    bandwidth_bytes_per_s: float = Field(gt=0, description="Peak memory bandwidth of one GPU.")
    flops_bf16: float = Field(gt=0, description="Dense bf16 tensor-core peak of one GPU, FLOP/s.")
    flops_fp8: float = Field(gt=0, description="Dense fp8 (and int8) tensor-core peak of one GPU, FLOP/s.")
    c0_s: float = Field(ge=0, description="Fixed seconds per engine step, independent of batch and model.")
    eta_bw: float = Field(gt=0, le=1, description="Achieved fraction of the peak memory bandwidth.")
    eta_f: float = Field(gt=0, le=1, description="Achieved fraction of the peak FLOPs.")
    source: str = Field(
        min_length=1, description="Where each figure came from (datasheet, measurement, fit)."
    )
    matmul_norm_exponent: float = Field(
        default=3.0,
        ge=1,
        le=16,
        description=(
            "p of the p-norm (weight read**p + matmul FLOP time**p)**(1/p) that prices the weight "
            "matmuls near the ridge, where they reach neither roof at once; 1 adds the two times, "
            "a large p tends to their max. The default is the H100 fit (bench/twin/fit.py)."
        ),
    )
    interconnect_bytes_per_s: float = Field(
        default=450e9,
        gt=0,
        description="Per-GPU all-reduce bandwidth between the GPUs of one tensor-parallel group.",
    )
    allreduce_latency_s: float = Field(
        default=8e-6,
        ge=0,
        description="Fixed cost of one small all-reduce across the tensor-parallel group.",
    )


_PACKAGE = "thrifty.twin"
_FOLDER = "calibration"


def available_gpus() -> list[str]:
    """GPU products that have a calibration file shipped with the package."""
    folder = resources.files(_PACKAGE).joinpath(_FOLDER)
    return sorted(
        entry.name.removesuffix(".json") for entry in folder.iterdir() if entry.name.endswith(".json")
    )


def load_calibration(gpu_product: str) -> GpuCalibration:
    """The shipped calibration of a GPU product (the `nvidia.com/gpu.product` label value)."""
    entry = resources.files(_PACKAGE).joinpath(_FOLDER, f"{gpu_product}.json")
    if not entry.is_file():
        raise CalibrationError(
            f"GPU product {gpu_product!r}: no calibration file thrifty/twin/{_FOLDER}/{gpu_product}.json; "
            f"calibrated products: {', '.join(available_gpus())}"
        )
    calibration = _parse(entry.read_text(), where=f"thrifty/twin/{_FOLDER}/{gpu_product}.json")
    if calibration.gpu != gpu_product:
        raise CalibrationError(
            f"thrifty/twin/{_FOLDER}/{gpu_product}.json: field gpu is {calibration.gpu!r}, "
            f"but the file name says {gpu_product!r}; they must match"
        )
    return calibration


def load_calibration_file(path: Path) -> GpuCalibration:
    """A calibration from any file, e.g. a fresh measurement not yet committed."""
    return _parse(path.read_text(), where=str(path))


def _parse(text: str, *, where: str) -> GpuCalibration:
    try:
        return GpuCalibration.model_validate(json.loads(text))
    except json.JSONDecodeError as error:
        raise CalibrationError(f"{where}: not valid JSON: {error}") from error
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}" for issue in error.errors()
        )
        raise CalibrationError(f"{where}: {problems}") from error
