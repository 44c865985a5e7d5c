"""The InferenceModel pydantic models: names, defaults, helpers for the renderer and control loop."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from thrifty.api import (
    API_VERSION,
    DEFAULT_ENGINE_IMAGE,
    GROUP,
    VERSION,
    Condition,
    ConditionType,
    EngineSpec,
    InferenceModel,
    InferenceModelStatus,
    ModelSpec,
    QuantizationSpec,
    ScalingDecision,
    SpeculativeSpec,
    describe_validation_error,
    parse_duration,
    split_source,
)

API_DIR = Path(__file__).resolve().parents[2] / "operator" / "thrifty" / "api"


def body(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": {"source": "hf://Qwen/Qwen2.5-1.5B-Instruct"},
        "resources": {"gpu": {"product": "NVIDIA-L4"}},
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceModel",
        "metadata": {"name": "qwen", "namespace": "models", "generation": 3},
        "spec": {**base, **spec},
    }


def test_api_version_is_group_and_version() -> None:
    assert f"{GROUP}/{VERSION}" == API_VERSION == "thrifty.dev/v1alpha1"


def test_raw_kubernetes_object_parses_with_camel_case_names() -> None:
    model = InferenceModel.model_validate(body(batching={"maxNumSeqs": 64, "prefixCaching": True}))
    assert model.spec.batching.max_num_seqs == 64
    assert model.spec.batching.prefix_caching is True
    assert (model.name, model.namespace, model.generation) == ("qwen", "models", 3)


def test_python_code_may_use_field_names() -> None:
    spec = ModelSpec(source="hf://org/model", served_name="my-model", max_model_len=4096)
    assert spec.model_dump(exclude_none=True) == {
        "source": "hf://org/model",
        "servedName": "my-model",
        "maxModelLen": 4096,
    }


def test_models_are_frozen() -> None:
    model = InferenceModel.model_validate(body())
    with pytest.raises(ValidationError, match="frozen"):
        model.spec.batching.max_num_seqs = 1  # type: ignore[misc]


def test_a_typo_is_an_error_that_names_its_path() -> None:
    with pytest.raises(ValidationError) as caught:
        InferenceModel.model_validate(body(batching={"maxNumSeq": 64}))
    assert (
        describe_validation_error(caught.value) == "spec.batching.maxNumSeq: Extra inputs are not permitted"
    )


def test_list_positions_appear_in_error_paths() -> None:
    tolerations = [{"key": "a", "effect": "NoSchedule"}, {"key": "b", "effect": "Never"}]
    with pytest.raises(ValidationError) as caught:
        InferenceModel.model_validate(
            body(resources={"gpu": {"product": "NVIDIA-L4"}, "tolerations": tolerations})
        )
    assert describe_validation_error(caught.value).startswith(
        "spec.resources.tolerations[1].effect: Input should be"
    )


def test_defaults_are_the_documented_ones() -> None:
    spec = InferenceModel.model_validate(body(scaling={"replicas": {"max": 3}})).spec
    assert spec.batching.max_num_seqs == 256
    assert (spec.quantization.method, spec.quantization.kv_cache_dtype) == ("none", "auto")
    assert spec.resources.gpu.count == 1
    assert spec.scaling is not None
    assert spec.scaling.enabled is True
    assert (spec.scaling.replicas.min, spec.scaling.replicas.max) == (1, 3)
    assert spec.scaling.target_batch_utilization == 0.8
    assert spec.scaling.cooldowns.scale_down_seconds == 300
    assert spec.engine.extra_args == ()


def test_served_name_falls_back_to_the_object_name() -> None:
    assert InferenceModel.model_validate(body()).served_name == "qwen"
    named = body(model={"source": "hf://Qwen/Qwen2.5-1.5B-Instruct", "servedName": "qwen2.5-1.5b"})
    assert InferenceModel.model_validate(named).served_name == "qwen2.5-1.5b"


def test_gpus_not_used_by_tensor_parallelism_run_data_parallel_engines() -> None:
    model = InferenceModel.model_validate(
        body(resources={"gpu": {"product": "NVIDIA-H100-80GB-HBM3", "count": 4}, "tensorParallelSize": 2})
    )
    assert model.gpu_count == 4
    assert model.gpu_product == "NVIDIA-H100-80GB-HBM3"
    assert model.spec.resources.effective_tensor_parallel_size == 2
    assert model.spec.resources.data_parallel_size == 2


def test_tensor_parallel_size_defaults_to_the_gpu_count() -> None:
    resources = InferenceModel.model_validate(
        body(resources={"gpu": {"product": "NVIDIA-H100-80GB-HBM3", "count": 8}})
    ).spec.resources
    assert (resources.effective_tensor_parallel_size, resources.data_parallel_size) == (8, 1)


def test_fixed_replicas_apply_only_without_scaling() -> None:
    assert InferenceModel.model_validate(body()).spec.fixed_replicas == 1
    spec = InferenceModel.model_validate(body(replicas=3)).spec
    assert (spec.fixed_replicas, spec.scaling_enabled) == (3, False)
    paused = InferenceModel.model_validate(
        body(replicas=2, scaling={"enabled": False, "replicas": {"max": 4}})
    )
    assert paused.spec.scaling_enabled is False


@pytest.mark.parametrize(
    ("source", "parts"),
    [
        ("hf://meta-llama/Llama-3.1-8B-Instruct", ("hf", "meta-llama/Llama-3.1-8B-Instruct", "")),
        ("hf://gpt2", ("hf", "gpt2", "")),
        ("pvc://model-store/llama/8b", ("pvc", "model-store", "llama/8b")),
        ("pvc://model-store", ("pvc", "model-store", "")),
        ("s3://my-models/llama-8b/", ("s3", "my-models", "llama-8b/")),
    ],
)
def test_sources_split_into_scheme_name_and_path(source: str, parts: tuple[str, str, str]) -> None:
    assert tuple(split_source(source)) == parts
    assert ModelSpec(source=source).scheme == parts[0]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("50ms", 0.05), ("2s", 2), ("1.5s", 1.5), (".5s", 0.5), ("5m", 300), ("1h", 3600)],
)
def test_durations_parse_into_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["0s", "0.0ms", "2", "2 seconds", "-1s", "1m30s", "5min"])
def test_bad_durations_are_refused_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. 2s"):
        parse_duration(text)


def test_slo_reads_in_seconds() -> None:
    spec = InferenceModel.model_validate(
        body(scaling={"replicas": {"max": 2}, "slo": {"ttftP95": "2s", "itlP95": "50ms"}})
    ).spec
    assert spec.scaling is not None
    assert spec.scaling.slo is not None
    assert (spec.scaling.slo.ttft_p95_seconds, spec.scaling.slo.itl_p95_seconds) == (2.0, 0.05)


def test_default_engine_image_is_pinned_by_digest() -> None:
    assert re.fullmatch(r"vllm/vllm-openai:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}", DEFAULT_ENGINE_IMAGE)
    assert EngineSpec().effective_image == DEFAULT_ENGINE_IMAGE
    assert EngineSpec(image="registry.local/vllm:dev").effective_image == "registry.local/vllm:dev"


@pytest.mark.parametrize(
    ("method", "flag"),
    [("none", None), ("fp8", "fp8"), ("awq_marlin", "awq_marlin"), ("int8", "compressed-tensors")],
)
def test_quantization_methods_map_to_vllm_flags(method: str, flag: str | None) -> None:
    assert QuantizationSpec.model_validate({"method": method}).vllm_method == flag


def test_draft_method_is_called_draft_model_in_vllm() -> None:
    draft = SpeculativeSpec.model_validate(
        {
            "method": "draft",
            "numSpeculativeTokens": 4,
            "draftModel": {"source": "hf://meta-llama/Llama-3.2-1B-Instruct", "tokenizerCompatible": True},
        }
    )
    assert draft.vllm_method == "draft_model"


def test_mtp_may_leave_the_token_count_to_the_model() -> None:
    assert SpeculativeSpec.model_validate({"method": "mtp"}).num_speculative_tokens is None


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--max_num_seqs", "64"], "spec.batching.maxNumSeqs"),
        (["--no-enable-prefix-caching"], "spec.batching.prefixCaching"),
        (["-q", "awq"], "spec.quantization.method"),
        (["--port=9000"], "(set by Thrifty)"),
    ],
)
def test_managed_flags_in_extra_args_point_to_the_spec_field(args: list[str], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        EngineSpec(extra_args=tuple(args))
    assert f"use {field}" in describe_validation_error(caught.value)


def test_flags_that_only_start_like_managed_ones_are_allowed() -> None:
    args = (
        "--model-loader-extra-config",
        "{}",
        "--max-logprobs",
        "5",
        "--enforce-eager",
        "--quantization-param-path=x",
    )
    assert EngineSpec(extra_args=args).extra_args == args


def test_status_round_trips_through_its_json_form() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    status = InferenceModelStatus(
        observed_generation=3,
        conditions=(
            Condition(type="Ready", status="True", reason="AllReplicasReady", last_transition_time=when),
        ),
        replicas=2,
        decisions=(ScalingDecision(time=when, action="ScaleUp", from_=1, to=2, reason="queue"),),
    )
    wire = status.model_dump(mode="json", exclude_none=True)
    assert wire["decisions"][0]["from"] == 1
    assert wire["conditions"][0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert InferenceModelStatus.model_validate(wire) == status


def test_status_conditions_are_found_by_type() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    status = InferenceModelStatus(
        conditions=(
            Condition(type="Degraded", status="True", reason="UnknownFlag", last_transition_time=when),
        )
    )
    degraded = status.condition(ConditionType.DEGRADED)
    assert degraded is not None
    assert degraded.reason == "UnknownFlag"
    assert status.condition(ConditionType.READY) is None


def test_status_from_a_newer_operator_with_extra_fields_still_parses() -> None:
    status = InferenceModelStatus.model_validate({"replicas": 1, "futureField": {"x": 1}})
    assert status.replicas == 1


def test_another_kind_is_not_an_inference_model() -> None:
    with pytest.raises(ValidationError, match="kind"):
        InferenceModel.model_validate({**body(), "kind": "InferenceRouter"})


def test_api_layer_imports_nothing_else_from_thrifty() -> None:
    outside = []
    for path in sorted(API_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("thrifty"):
                module = node.module or ""
                if not module.startswith("thrifty.api"):
                    outside.append(f"{path.name}: {module}")
    assert outside == []


class _ReadOnlyBody(Mapping[str, Any]):
    """A stand-in for kopf's Body: a read-only mapping whose nested dicts are mappings too."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        value = self._data[key]
        return _ReadOnlyBody(value) if isinstance(value, dict) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def test_a_read_only_mapping_body_parses_like_a_dict() -> None:
    raw = body(batching={"maxNumSeqs": 64})
    assert InferenceModel.model_validate(_ReadOnlyBody(raw)) == InferenceModel.model_validate(raw)
