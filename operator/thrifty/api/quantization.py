"""`spec.quantization`: how weights and the KV cache are stored on the GPU."""

from __future__ import annotations

from typing import Literal

from thrifty.api.base import SpecModel

QuantizationMethod = Literal[
    "none",
    "awq",
    "awq_marlin",
    "gptq",
    "gptq_marlin",
    "fp8",
    "int8",
    "compressed-tensors",
    "bitsandbytes",
]
KvCacheDtype = Literal["auto", "fp8", "fp8_e4m3", "fp8_e5m2"]

# What each method becomes on vLLM's command line. int8 is not a vLLM method of its own: vLLM runs
# INT8 weights and activations (W8A8) from checkpoints made by llm-compressor, whose config names
# the compressed-tensors format; there is no in-flight INT8 quantization of 16-bit weights.
VLLM_QUANTIZATION: dict[str, str | None] = {
    "none": None,
    "awq": "awq",
    "awq_marlin": "awq_marlin",
    "gptq": "gptq",
    "gptq_marlin": "gptq_marlin",
    "fp8": "fp8",
    "int8": "compressed-tensors",
    "compressed-tensors": "compressed-tensors",
    "bitsandbytes": "bitsandbytes",
}


class QuantizationSpec(SpecModel):
    """Weight and KV-cache precision. Lower precision fits a model on fewer GPUs and leaves more
    memory for the KV cache, i.e. more concurrent sequences per GPU."""

    method: QuantizationMethod = "none"
    """How the weights are quantized; becomes vLLM `--quantization`:

    - `none`: no flag; vLLM runs the checkpoint as stored (a quantized checkpoint is still
      recognised from its own config).
    - `awq`, `gptq`: 4-bit AWQ / GPTQ checkpoints on vLLM's plain kernels.
    - `awq_marlin`, `gptq_marlin`: the same checkpoints on the faster Marlin kernels (Ampere and
      newer); prefer these on A100, L4, H100.
    - `fp8`: FP8 weights and activations (W8A8). A 16-bit checkpoint is quantized when it loads,
      no calibration needed; needs Ada or Hopper (L4, L40S, H100) for full speed.
    - `int8`: INT8 W8A8 from an llm-compressor checkpoint, e.g.
      `neuralmagic/Meta-Llama-3.1-8B-Instruct-quantized.w8a8`; emitted as
      `--quantization compressed-tensors` because that is the format such checkpoints are in.
      Turing to Hopper; not Blackwell.
    - `compressed-tensors`: any llm-compressor checkpoint (FP8, INT8, INT4 schemes).
    - `bitsandbytes`: bitsandbytes 4-bit, quantized in flight; slow, for small GPUs.

    Example: `fp8`."""

    kv_cache_dtype: KvCacheDtype = "auto"
    """Element type of the KV cache (vLLM `--kv-cache-dtype`). `auto` keeps the model's dtype;
    `fp8` (= `fp8_e4m3`) or `fp8_e5m2` halve KV memory, roughly doubling the tokens that fit, at
    a small accuracy cost. Example: `fp8`."""

    @property
    def vllm_method(self) -> str | None:
        """The value of `--quantization`, or None when no flag is passed."""
        return VLLM_QUANTIZATION[self.method]
