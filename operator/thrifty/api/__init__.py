"""The InferenceModel API (thrifty.dev/v1alpha1): pydantic models that are the single source of the CRD.

Parse once at the edge, then pass typed models:

    model = InferenceModel.model_validate(body)
    model.spec.batching.max_num_seqs

This package imports nothing else from thrifty; every other layer may import it.
"""

from thrifty.api.batching import DEFAULT_MAX_NUM_SEQS, BatchingSpec
from thrifty.api.crd import crd_files, inference_model_crd
from thrifty.api.durations import duration_seconds, parse_duration
from thrifty.api.engine import DEFAULT_ENGINE_IMAGE, MANAGED_FLAGS, EngineSpec
from thrifty.api.errors import describe_validation_error, field_path
from thrifty.api.inference_model import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    InferenceModel,
    InferenceModelSpec,
)
from thrifty.api.model import ModelSpec, SourceParts, split_source
from thrifty.api.quantization import QuantizationSpec
from thrifty.api.resources import GPU_PRODUCT_LABEL, GPU_RESOURCE, GpuSpec, ResourcesSpec, Toleration
from thrifty.api.scaling import Cooldowns, CostSpec, ReplicaBounds, ScalingSpec, SloSpec, TuneMaxNumSeqs
from thrifty.api.speculative import DraftModelSpec, EagleHeadSpec, NgramSpec, SpeculativeSpec
from thrifty.api.status import (
    Condition,
    ConditionType,
    CostStatus,
    InferenceModelStatus,
    MaxNumSeqsStatus,
    ScalingDecision,
    UtilizationStatus,
)

__all__ = [
    "API_VERSION",
    "DEFAULT_ENGINE_IMAGE",
    "DEFAULT_MAX_NUM_SEQS",
    "GPU_PRODUCT_LABEL",
    "GPU_RESOURCE",
    "GROUP",
    "KIND",
    "MANAGED_FLAGS",
    "PLURAL",
    "VERSION",
    "BatchingSpec",
    "Condition",
    "ConditionType",
    "Cooldowns",
    "CostSpec",
    "CostStatus",
    "DraftModelSpec",
    "EagleHeadSpec",
    "EngineSpec",
    "GpuSpec",
    "InferenceModel",
    "InferenceModelSpec",
    "InferenceModelStatus",
    "MaxNumSeqsStatus",
    "ModelSpec",
    "NgramSpec",
    "QuantizationSpec",
    "ReplicaBounds",
    "ResourcesSpec",
    "ScalingDecision",
    "ScalingSpec",
    "SloSpec",
    "SourceParts",
    "SpeculativeSpec",
    "Toleration",
    "TuneMaxNumSeqs",
    "UtilizationStatus",
    "crd_files",
    "describe_validation_error",
    "duration_seconds",
    "field_path",
    "inference_model_crd",
    "parse_duration",
    "split_source",
]
