"""The InferenceModel resource: one model served by vLLM on GPUs, and what Thrifty observed of it."""

from __future__ import annotations

from typing import Annotated, Final, Literal, Self

from pydantic import ConfigDict, Field, model_validator

from thrifty.api.base import CelRule, ObjectModel, SpecModel, cel_rules
from thrifty.api.batching import DEFAULT_MAX_NUM_SEQS, BatchingSpec
from thrifty.api.engine import EngineSpec
from thrifty.api.model import ModelSpec
from thrifty.api.quantization import QuantizationSpec
from thrifty.api.resources import ResourcesSpec
from thrifty.api.scaling import CostSpec, ScalingSpec
from thrifty.api.speculative import SpeculativeSpec
from thrifty.api.status import InferenceModelStatus

GROUP = "thrifty.dev"
VERSION = "v1alpha1"
API_VERSION: Final = "thrifty.dev/v1alpha1"
KIND: Final = "InferenceModel"
PLURAL = "inferencemodels"
SINGULAR = "inferencemodel"
SHORT_NAMES = ("im",)
CATEGORIES = ("thrifty",)

REPLICAS_OR_SCALING = CelRule(
    rule="!has(self.replicas) || !has(self.scaling) || (has(self.scaling.enabled) && !self.scaling.enabled)",
    message=(
        "spec.replicas must be unset while spec.scaling.enabled is true: the control loop chooses the "
        "replica count within spec.scaling.replicas; remove spec.replicas, or set spec.scaling.enabled: false"
    ),
    field_path=".replicas",
)
# Without chunked prefill a prompt must fit one scheduler step; vLLM refuses to start otherwise
# (SchedulerConfig.verify_max_model_len in vllm/config/scheduler.py).
TOKENS_COVER_CONTEXT_WITHOUT_CHUNKING = CelRule(
    rule=(
        "!has(self.batching) || !has(self.batching.chunkedPrefill) || self.batching.chunkedPrefill"
        " || !has(self.batching.maxNumBatchedTokens) || !has(self.model.maxModelLen)"
        " || self.batching.maxNumBatchedTokens >= self.model.maxModelLen"
    ),
    message=(
        "spec.batching.maxNumBatchedTokens must be at least spec.model.maxModelLen when "
        "spec.batching.chunkedPrefill is false (a whole prompt must fit one step): raise "
        "maxNumBatchedTokens, lower maxModelLen, or enable chunkedPrefill"
    ),
    field_path=".batching.maxNumBatchedTokens",
)
TUNING_RANGE_HOLDS_MAX_NUM_SEQS = CelRule(
    rule=(
        "!has(self.scaling) || !has(self.scaling.tuneMaxNumSeqs)"
        " || (has(self.scaling.tuneMaxNumSeqs.enabled) && !self.scaling.tuneMaxNumSeqs.enabled)"
        f" || ((has(self.batching) && has(self.batching.maxNumSeqs)) ? self.batching.maxNumSeqs : {DEFAULT_MAX_NUM_SEQS})"
        " >= self.scaling.tuneMaxNumSeqs.min"
        f" && ((has(self.batching) && has(self.batching.maxNumSeqs)) ? self.batching.maxNumSeqs : {DEFAULT_MAX_NUM_SEQS})"
        " <= self.scaling.tuneMaxNumSeqs.max"
    ),
    message=(
        "spec.batching.maxNumSeqs must lie within spec.scaling.tuneMaxNumSeqs.min..max, the range the "
        "control loop tunes it in (maxNumSeqs defaults to 256): move maxNumSeqs or widen the range"
    ),
    field_path=".batching.maxNumSeqs",
)


class InferenceModelSpec(SpecModel):
    """Desired state of one served model. Thrifty renders it into a vLLM Deployment, a Service and a
    PodDisruptionBudget, and never writes it back."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            REPLICAS_OR_SCALING, TOKENS_COVER_CONTEXT_WITHOUT_CHUNKING, TUNING_RANGE_HOLDS_MAX_NUM_SEQS
        )
    )

    model: ModelSpec
    """The weights to serve and the name clients use."""

    engine: EngineSpec = EngineSpec()
    """The vLLM image and extra flags."""

    quantization: QuantizationSpec = QuantizationSpec()
    """Weight and KV-cache precision."""

    speculative: SpeculativeSpec | None = None
    """Speculative decoding; unset disables it."""

    batching: BatchingSpec = BatchingSpec()
    """Scheduler limits per replica."""

    resources: ResourcesSpec
    """GPUs, CPU and memory per replica, and scheduling constraints."""

    replicas: Annotated[int, Field(ge=0, le=1000)] | None = None
    """A fixed replica count, used while spec.scaling is unset or disabled (unset means 1). This is
    the scale subresource's field, so `kubectl scale im NAME --replicas 3` and a
    HorizontalPodAutoscaler set it. Must stay unset while spec.scaling.enabled is true."""

    scaling: ScalingSpec | None = None
    """Thrifty's control loop: replica bounds, utilization target, SLOs, batch-limit tuning."""

    cost: CostSpec | None = None
    """GPU price, for cost reporting in status."""

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Self:
        scaling = self.scaling
        if self.replicas is not None and scaling is not None and scaling.enabled:
            raise REPLICAS_OR_SCALING.violation(f"replicas {self.replicas} with scaling enabled")
        batching, max_model_len = self.batching, self.model.max_model_len
        tokens = batching.max_num_batched_tokens
        chunking_off = batching.chunked_prefill is False
        if chunking_off and tokens is not None and max_model_len is not None and tokens < max_model_len:
            raise TOKENS_COVER_CONTEXT_WITHOUT_CHUNKING.violation(
                f"maxNumBatchedTokens {tokens} < maxModelLen {max_model_len}"
            )
        tune = scaling.tune_max_num_seqs if scaling is not None else None
        if tune is not None and tune.enabled and not tune.min <= batching.max_num_seqs <= tune.max:
            raise TUNING_RANGE_HOLDS_MAX_NUM_SEQS.violation(
                f"maxNumSeqs {batching.max_num_seqs} outside {tune.min}..{tune.max}"
            )
        return self

    @property
    def scaling_enabled(self) -> bool:
        return self.scaling is not None and self.scaling.enabled

    @property
    def fixed_replicas(self) -> int:
        """Replicas to run when the control loop is off."""
        return 1 if self.replicas is None else self.replicas


class InferenceModel(ObjectModel):
    """A whole InferenceModel object as the apiserver returns it.

    >>> model = InferenceModel.model_validate(body)   # body: the raw dict from kopf or the API
    >>> model.spec.batching.max_num_seqs
    256
    """

    api_version: Literal["thrifty.dev/v1alpha1"] = API_VERSION
    kind: Literal["InferenceModel"] = KIND
    spec: InferenceModelSpec
    status: InferenceModelStatus | None = None

    @property
    def served_name(self) -> str:
        """What clients put in the OpenAI `model` field: spec.model.servedName, else the object's name."""
        return self.spec.model.served_name or self.name

    @property
    def gpu_count(self) -> int:
        """GPUs per replica."""
        return self.spec.resources.gpu.count

    @property
    def gpu_product(self) -> str:
        return self.spec.resources.gpu.product
