"""The InferenceModel and InferenceRouter API (thrifty.dev/v1alpha1): pydantic models that are the
single source of the CRDs.

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
from thrifty.api.inference_router import ROUTER_KIND, ROUTER_PLURAL, InferenceRouter, InferenceRouterSpec
from thrifty.api.model import ModelSpec, SourceParts, split_source
from thrifty.api.quantization import QuantizationSpec
from thrifty.api.resources import GPU_PRODUCT_LABEL, GPU_RESOURCE, GpuSpec, ResourcesSpec, Toleration
from thrifty.api.router_config import (
    DEFAULT_MAX_IN_FLIGHT_PER_REPLICA,
    WAKE_ANNOTATION,
    ModelBackend,
    RouterConfig,
)
from thrifty.api.router_crd import inference_router_crd
from thrifty.api.router_policies import (
    AdmissionSpec,
    AffinityKey,
    AffinitySpec,
    EscalationSpec,
    EscalationTrigger,
)
from thrifty.api.router_status import InferenceRouterStatus, TierStatus
from thrifty.api.router_tiers import ClassifierSpec, ConfigMapKeyRef, SelectionSpec, TierRule, TierSpec
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
    "DEFAULT_MAX_IN_FLIGHT_PER_REPLICA",
    "DEFAULT_MAX_NUM_SEQS",
    "GPU_PRODUCT_LABEL",
    "GPU_RESOURCE",
    "GROUP",
    "KIND",
    "MANAGED_FLAGS",
    "PLURAL",
    "ROUTER_KIND",
    "ROUTER_PLURAL",
    "VERSION",
    "WAKE_ANNOTATION",
    "AdmissionSpec",
    "AffinityKey",
    "AffinitySpec",
    "BatchingSpec",
    "ClassifierSpec",
    "Condition",
    "ConditionType",
    "ConfigMapKeyRef",
    "Cooldowns",
    "CostSpec",
    "CostStatus",
    "DraftModelSpec",
    "EagleHeadSpec",
    "EngineSpec",
    "EscalationSpec",
    "EscalationTrigger",
    "GpuSpec",
    "InferenceModel",
    "InferenceModelSpec",
    "InferenceModelStatus",
    "InferenceRouter",
    "InferenceRouterSpec",
    "InferenceRouterStatus",
    "MaxNumSeqsStatus",
    "ModelBackend",
    "ModelSpec",
    "NgramSpec",
    "QuantizationSpec",
    "ReplicaBounds",
    "ResourcesSpec",
    "RouterConfig",
    "ScalingDecision",
    "ScalingSpec",
    "SelectionSpec",
    "SloSpec",
    "SourceParts",
    "SpeculativeSpec",
    "TierRule",
    "TierSpec",
    "TierStatus",
    "Toleration",
    "TuneMaxNumSeqs",
    "UtilizationStatus",
    "crd_files",
    "describe_validation_error",
    "duration_seconds",
    "field_path",
    "inference_model_crd",
    "inference_router_crd",
    "parse_duration",
    "split_source",
]
