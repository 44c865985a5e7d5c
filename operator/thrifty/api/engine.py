"""`spec.engine`: the vLLM container image and any extra flags the typed spec does not cover."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, StringConstraints, field_validator

from thrifty.api.base import CelRule, SpecModel, cel_rules

# PLACEHOLDER digest: the tag is the vLLM release the flag spec (thrifty.vllm_args) is generated
# from, but the digest is sha256("thrifty placeholder for vllm/vllm-openai:v0.33.0"), not the
# registry's manifest digest, which cannot be looked up from here. Replace it with the digest
# that `crane digest vllm/vllm-openai:v0.33.0` prints before running on real GPUs.
DEFAULT_ENGINE_IMAGE = (
    "vllm/vllm-openai:v0.33.0@sha256:170ddae302dcc9e9b3e64dfae772f0c8752d9e5503e95f0c4b2c67f3300b8b12"
)

# Flags Thrifty derives from the typed spec, and the field to use instead. Setting one of them in
# extraArgs as well would give the pod two sources of truth, and the control loop (which owns
# --max-num-seqs) would silently lose to a hand-written flag.
MANAGED_FLAGS: dict[str, str] = {
    "model": "spec.model.source",
    "served-model-name": "spec.model.servedName",
    "revision": "spec.model.revision",
    "max-model-len": "spec.model.maxModelLen",
    "quantization": "spec.quantization.method",
    "kv-cache-dtype": "spec.quantization.kvCacheDtype",
    "speculative-config": "spec.speculative",
    "max-num-seqs": "spec.batching.maxNumSeqs",
    "max-num-batched-tokens": "spec.batching.maxNumBatchedTokens",
    "enable-chunked-prefill": "spec.batching.chunkedPrefill",
    "enable-prefix-caching": "spec.batching.prefixCaching",
    "gpu-memory-utilization": "spec.batching.gpuMemoryUtilization",
    "tensor-parallel-size": "spec.resources.tensorParallelSize",
    "data-parallel-size": "spec.resources.gpu.count",
    "host": "(set by Thrifty)",
    "port": "(set by Thrifty)",
}
MANAGED_SHORT_FLAGS: dict[str, str] = {
    "tp": "tensor-parallel-size",
    "q": "quantization",
    "dp": "data-parallel-size",
}


def _managed_flag_pattern() -> str:
    # vLLM's parser accepts `_` for `-` inside flag names and `--no-` for boolean flags.
    long_names = "|".join(name.replace("-", "[-_]") for name in MANAGED_FLAGS)
    short_names = "|".join(MANAGED_SHORT_FLAGS)
    return f"^(--(no[-_])?({long_names})|-({short_names}))(=.*)?$"


MANAGED_FLAG_PATTERN = _managed_flag_pattern()
_MANAGED_FLAG = re.compile(MANAGED_FLAG_PATTERN)

NO_MANAGED_FLAGS = CelRule(
    rule=f"self.all(arg, !arg.matches('{MANAGED_FLAG_PATTERN}'))",
    message=(
        "spec.engine.extraArgs must not set a flag that Thrifty derives from the spec "
        "(--model, --served-model-name, --max-model-len, --quantization, --kv-cache-dtype, "
        "--speculative-config, --max-num-seqs, --max-num-batched-tokens, --enable-chunked-prefill, "
        "--enable-prefix-caching, --gpu-memory-utilization, --tensor-parallel-size, "
        "--data-parallel-size, --revision, --host, --port): set the matching spec field instead"
    ),
)

ExtraArg = Annotated[str, StringConstraints(min_length=1, max_length=512)]
Image = Annotated[str, StringConstraints(pattern=r"^[^\s]+$", max_length=512)]


class EngineSpec(SpecModel):
    """The vLLM server: container image and extra command-line flags."""

    image: Image | None = None
    """The vLLM OpenAI-compatible server image. Defaults to the release this operator's flag spec
    was generated from (a digest-pinned `vllm/vllm-openai`), so leaving it unset keeps the image
    and the flags Thrifty emits in step across operator upgrades. When set, pin a digest
    (`repo:tag@sha256:...`) so every replica runs the same bits. Example:
    `vllm/vllm-openai:v0.33.0@sha256:<64 hex digits>`."""

    extra_args: Annotated[
        tuple[ExtraArg, ...], Field(max_length=64, json_schema_extra=cel_rules(NO_MANAGED_FLAGS))
    ] = ()
    """Additional vLLM flags, appended verbatim after the ones Thrifty derives from the spec, one
    list item per shell word. Each flag is checked against the pinned vLLM's argument spec; an
    unknown flag marks the model Degraded and leaves the running Deployment as it is. Flags that a
    spec field controls (e.g. --max-num-seqs) are refused: set the field. Example:
    `["--enable-auto-tool-choice", "--tool-call-parser", "llama3_json"]`."""

    @field_validator("extra_args")
    @classmethod
    def _no_managed_flags(cls, extra_args: tuple[str, ...]) -> tuple[str, ...]:
        for arg in extra_args:
            match = _MANAGED_FLAG.match(arg)
            if match is None:
                continue
            name = match.group(3) or MANAGED_SHORT_FLAGS[match.group(4)]
            field = MANAGED_FLAGS[name.replace("_", "-")]
            raise NO_MANAGED_FLAGS.violation(f"{arg!r}; use {field}")
        return extra_args

    @property
    def effective_image(self) -> str:
        """The image the pod runs: `image`, or the operator's pinned default."""
        return self.image or DEFAULT_ENGINE_IMAGE
