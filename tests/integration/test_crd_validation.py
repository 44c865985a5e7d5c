"""The generated CRD on the testbed's real apiserver: every example is accepted, and invalid
InferenceModels are refused (schema or CEL) with a 422 whose message names the offending field.

INVALID_CASES is also replayed against the pydantic models by tests/unit/test_api_validation.py,
so the apiserver and the operator refuse the same objects.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from thrifty.api import API_VERSION, GROUP, KIND, PLURAL, VERSION, InferenceModel, inference_model_crd

pytestmark = pytest.mark.testbed

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
T = TypeVar("T")
DELETE = object()
"""A change that removes the field instead of setting it."""

VALID: dict[str, Any] = {
    "apiVersion": API_VERSION,
    "kind": KIND,
    "metadata": {"name": "case"},
    "spec": {
        "model": {
            "source": "hf://meta-llama/Llama-3.1-8B-Instruct",
            "servedName": "llama-8b",
            "credentialsSecret": "hf-token",
            "maxModelLen": 8192,
        },
        "engine": {"extraArgs": ["--enable-auto-tool-choice", "--tool-call-parser", "llama3_json"]},
        "quantization": {"method": "fp8", "kvCacheDtype": "fp8"},
        "batching": {"maxNumSeqs": 128, "maxNumBatchedTokens": 8192},
        "resources": {
            "gpu": {"product": "NVIDIA-H100-80GB-HBM3", "count": 4},
            "tensorParallelSize": 2,
            "cpu": "16",
            "memory": "128Gi",
            "nodeSelector": {"topology.kubernetes.io/zone": "zone-a"},
            "tolerations": [{"key": "dedicated", "value": "inference", "effect": "NoSchedule"}],
        },
        "scaling": {
            "replicas": {"min": 1, "max": 4},
            "slo": {"ttftP95": "2s", "itlP95": "50ms"},
            "tuneMaxNumSeqs": {"min": 32, "max": 256},
        },
        "cost": {"gpuHourlyUSD": 2.5},
    },
}
DRAFT = {
    "method": "draft",
    "numSpeculativeTokens": 4,
    "draftModel": {"source": "hf://meta-llama/Llama-3.2-1B-Instruct", "tokenizerCompatible": True},
}
NGRAM = {"method": "ngram", "numSpeculativeTokens": 4, "ngram": {"promptLookupMin": 2, "promptLookupMax": 5}}
EAGLE = {
    "method": "eagle3",
    "numSpeculativeTokens": 3,
    "eagleHead": {"source": "hf://yuhuili/EAGLE3-LLaMA3.1-Instruct-8B"},
}


@dataclass(frozen=True)
class Case:
    """A small mutation of VALID that must be refused, and the field the refusal must name."""

    id: str
    changes: dict[str, Any]
    field: str
    strict_only: bool = False
    """Refused only under strict field validation (unknown fields); otherwise they are pruned."""


INVALID_CASES = [
    # wrong types and ranges
    Case("max-num-seqs-not-an-integer", {"spec.batching.maxNumSeqs": "many"}, "spec.batching.maxNumSeqs"),
    Case("max-num-seqs-zero", {"spec.batching.maxNumSeqs": 0}, "spec.batching.maxNumSeqs"),
    Case("gpu-memory-utilization-above-one", {"spec.batching.gpuMemoryUtilization": 1.5}, "spec.batching.gpuMemoryUtilization"),
    Case("gpu-memory-utilization-zero", {"spec.batching.gpuMemoryUtilization": 0}, "spec.batching.gpuMemoryUtilization"),
    Case("gpu-count-zero", {"spec.resources.gpu.count": 0}, "spec.resources.gpu.count"),
    Case("negative-replicas", {"spec.scaling": DELETE, "spec.replicas": -1}, "spec.replicas"),
    Case("negative-gpu-price", {"spec.cost.gpuHourlyUSD": -1}, "spec.cost.gpuHourlyUSD"),
    Case("zero-speculative-tokens", {"spec.speculative": {**NGRAM, "numSpeculativeTokens": 0}}, "spec.speculative.numSpeculativeTokens"),
    Case("chunked-prefill-not-a-boolean", {"spec.batching.chunkedPrefill": "sometimes"}, "spec.batching.chunkedPrefill"),
    Case("too-many-extra-args", {"spec.engine.extraArgs": ["--enforce-eager"] * 65}, "spec.engine.extraArgs"),
    # enums and patterns
    Case("unknown-quantization-method", {"spec.quantization.method": "int4"}, "spec.quantization.method"),
    Case("unknown-kv-cache-dtype", {"spec.quantization.kvCacheDtype": "int8"}, "spec.quantization.kvCacheDtype"),
    Case("unknown-speculative-method", {"spec.speculative": {**NGRAM, "method": "medusa"}}, "spec.speculative.method"),
    Case("gs-source-scheme", {"spec.model.source": "gs://models/llama"}, "spec.model.source"),
    Case("hf-source-without-repo", {"spec.model.source": "hf://"}, "spec.model.source"),
    Case("served-name-not-dns-like", {"spec.model.servedName": "Llama_8B"}, "spec.model.servedName"),
    Case("slo-duration-in-words", {"spec.scaling.slo.ttftP95": "2 seconds"}, "spec.scaling.slo.ttftP95"),
    Case("slo-duration-zero", {"spec.scaling.slo.itlP95": "0ms"}, "spec.scaling.slo.itlP95"),
    Case("cpu-not-a-quantity", {"spec.resources.cpu": "eight"}, "spec.resources.cpu"),
    Case("toleration-unknown-effect", {"spec.resources.tolerations.0.effect": "Sometimes"}, "spec.resources.tolerations[0].effect"),
    # required fields and unknown fields
    Case("source-missing", {"spec.model.source": DELETE}, "spec.model.source"),
    Case("gpu-product-missing", {"spec.resources.gpu.product": DELETE}, "spec.resources.gpu.product"),
    Case("typo-in-batching-field", {"spec.batching.maxNumSeq": 64}, "spec.batching.maxNumSeq", strict_only=True),
    Case("unknown-spec-field", {"spec.gpus": 4}, "spec.gpus", strict_only=True),
    # CEL rules, one case each
    Case("tensor-parallel-does-not-divide-gpus", {"spec.resources.tensorParallelSize": 3}, "spec.resources.tensorParallelSize"),
    Case("gpu-product-in-node-selector", {"spec.resources.nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-L4"}}, "spec.resources.nodeSelector"),
    Case("node-selector-key-with-space", {"spec.resources.nodeSelector": {"my zone": "a"}}, "spec.resources.nodeSelector"),
    Case("toleration-exists-with-value", {"spec.resources.tolerations.0.operator": "Exists"}, "spec.resources.tolerations[0].value"),
    Case("toleration-equal-without-key", {"spec.resources.tolerations.0.key": DELETE}, "spec.resources.tolerations[0].key"),
    Case("toleration-seconds-without-no-execute", {"spec.resources.tolerations.0.tolerationSeconds": 30}, "spec.resources.tolerations[0].tolerationSeconds"),
    Case("replicas-while-scaling-enabled", {"spec.replicas": 3}, "spec.replicas"),
    Case("scaling-min-above-max", {"spec.scaling.replicas": {"min": 5, "max": 2}}, "spec.scaling.replicas.min"),
    Case("tune-min-above-max", {"spec.scaling.tuneMaxNumSeqs": {"min": 512, "max": 64}}, "spec.scaling.tuneMaxNumSeqs.min"),
    Case("max-num-seqs-outside-tuning-range", {"spec.batching.maxNumSeqs": 16}, "spec.batching.maxNumSeqs"),
    Case("batched-tokens-below-max-num-seqs", {"spec.batching.maxNumBatchedTokens": 64}, "spec.batching.maxNumBatchedTokens"),
    Case("batched-tokens-below-context-without-chunking", {"spec.batching.chunkedPrefill": False, "spec.batching.maxNumBatchedTokens": 4096}, "spec.batching.maxNumBatchedTokens"),
    Case("draft-method-without-draft-model", {"spec.speculative": {"method": "draft", "numSpeculativeTokens": 4}}, "spec.speculative.draftModel"),
    Case("draft-model-with-ngram-method", {"spec.speculative": {**NGRAM, "draftModel": DRAFT["draftModel"]}}, "spec.speculative.draftModel"),
    Case("draft-model-tokenizer-not-compatible", {"spec.speculative": {**DRAFT, "draftModel": {**DRAFT["draftModel"], "tokenizerCompatible": False}}}, "spec.speculative.draftModel.tokenizerCompatible"),
    Case("ngram-settings-with-eagle", {"spec.speculative": {**EAGLE, "ngram": {"promptLookupMax": 4}}}, "spec.speculative.ngram"),
    Case("ngram-min-above-max", {"spec.speculative": {**NGRAM, "ngram": {"promptLookupMin": 6, "promptLookupMax": 3}}}, "spec.speculative.ngram.promptLookupMin"),
    Case("eagle-without-head", {"spec.speculative": {"method": "eagle", "numSpeculativeTokens": 3}}, "spec.speculative.eagleHead"),
    Case("ngram-without-token-count", {"spec.speculative": {"method": "ngram"}}, "spec.speculative.numSpeculativeTokens"),
    Case("extra-args-set-max-num-seqs", {"spec.engine.extraArgs": ["--max-num-seqs=64"]}, "spec.engine.extraArgs"),
    Case("extra-args-set-tensor-parallel-short-flag", {"spec.engine.extraArgs": ["-tp", "2"]}, "spec.engine.extraArgs"),
    Case("credentials-with-pvc-source", {"spec.model.source": "pvc://model-store/llama-8b"}, "spec.model.credentialsSecret"),
    Case("revision-with-s3-source", {"spec.model.source": "s3://my-models/llama-8b", "spec.model.revision": "main"}, "spec.model.revision"),
]  # fmt: skip


def mutated(changes: dict[str, Any], base: dict[str, Any] = VALID) -> dict[str, Any]:
    """A deep copy of `base` with each dotted path ("spec.resources.tolerations.0.key") set or deleted."""
    body = copy.deepcopy(base)
    for path, value in changes.items():
        *parents, last = path.split(".")
        node: Any = body
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        key: Any = int(last) if last.isdigit() else last
        if value is DELETE:
            del node[key]
        else:
            node[key] = copy.deepcopy(value)
    return body


def eventually(probe: Callable[[], T | None], *, timeout: float = 30, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="module")
def custom(api_client: Any) -> Any:
    """CustomObjectsApi once the generated CRD is Established and its resource is served."""
    extensions = client.ApiextensionsV1Api(api_client)
    crd = inference_model_crd()
    try:
        extensions.create_custom_resource_definition(crd)
    except ApiException as error:
        if error.status != 409:
            raise
        current = extensions.read_custom_resource_definition(crd["metadata"]["name"])
        crd["metadata"]["resourceVersion"] = current.metadata.resource_version
        extensions.replace_custom_resource_definition(crd["metadata"]["name"], crd)

    def established() -> bool:
        conditions = (
            extensions.read_custom_resource_definition(crd["metadata"]["name"]).status.conditions or []
        )
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    eventually(established, what="the InferenceModel CRD to be Established")
    api = client.CustomObjectsApi(api_client)
    eventually(lambda: _served(api), what="inferencemodels to be served")
    return api


def _served(api: Any) -> bool:
    try:
        api.list_cluster_custom_object(GROUP, VERSION, PLURAL)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


@pytest.fixture
def namespace(core: Any) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def create(custom: Any, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    body = {**body, "metadata": {**body["metadata"], "namespace": namespace}}
    created: dict[str, Any] = custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body, field_validation="Strict"
    )
    return created


def test_crd_is_established_with_names_and_subresources(custom: Any, api_client: Any) -> None:
    crd = client.ApiextensionsV1Api(api_client).read_custom_resource_definition(f"{PLURAL}.{GROUP}")
    assert crd.spec.names.short_names == ["im"]
    assert crd.spec.names.categories == ["thrifty"]
    version = crd.spec.versions[0]
    assert version.subresources.scale.label_selector_path == ".status.selector"
    assert [c.name for c in version.additional_printer_columns if not c.priority] == [
        "Ready",
        "Replicas",
        "MaxNumSeqs",
        "Model",
        "Age",
    ]


@pytest.mark.parametrize("example", sorted(EXAMPLES_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_example_is_accepted_and_reads_back_as_the_model(custom: Any, namespace: str, example: Path) -> None:
    body = yaml.safe_load(example.read_text())
    created = create(custom, namespace, body)
    model = InferenceModel.model_validate(created)
    assert model.spec == InferenceModel.model_validate(body).spec
    assert created["spec"]["batching"]["maxNumSeqs"] == model.spec.batching.max_num_seqs


def test_the_valid_base_of_the_invalid_cases_is_accepted(custom: Any, namespace: str) -> None:
    created = create(custom, namespace, VALID)
    assert created["spec"]["resources"]["tensorParallelSize"] == 2


def test_apiserver_fills_defaults_from_the_models(custom: Any, namespace: str) -> None:
    minimal = mutated({}, {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": "minimal"},
        "spec": {
            "model": {"source": "hf://Qwen/Qwen2.5-1.5B-Instruct"},
            "resources": {"gpu": {"product": "NVIDIA-L4"}},
            "scaling": {"replicas": {"max": 2}},
        },
    })  # fmt: skip
    spec = create(custom, namespace, minimal)["spec"]
    assert spec["batching"] == {"maxNumSeqs": 256}
    assert spec["quantization"] == {"method": "none", "kvCacheDtype": "auto"}
    assert spec["resources"]["gpu"]["count"] == 1
    assert spec["scaling"]["enabled"] is True
    assert spec["scaling"]["replicas"] == {"min": 1, "max": 2, "idleDelay": "15m"}
    assert spec["scaling"]["cooldowns"] == {"scaleUp": "1m", "scaleDown": "5m", "maxNumSeqsRollout": "10m"}
    assert "engine" not in spec, "an empty engine block must not be written into every object"


def test_there_are_at_least_25_distinct_invalid_cases() -> None:
    assert len(INVALID_CASES) >= 25
    assert len({case.id for case in INVALID_CASES}) == len(INVALID_CASES)


@pytest.mark.parametrize("case", INVALID_CASES, ids=lambda case: case.id)
def test_invalid_model_is_rejected_naming_the_field(custom: Any, namespace: str, case: Case) -> None:
    with pytest.raises(ApiException) as caught:
        create(custom, namespace, mutated(case.changes))
    error = caught.value
    # Unknown fields under strict validation are a decoding error (400), the rest are invalid (422).
    assert error.status == (400 if case.strict_only else 422), error.body
    assert case.field in error.body, f"the message does not name {case.field}: {error.body}"


def test_scale_subresource_sets_spec_replicas(custom: Any, namespace: str) -> None:
    fixed = mutated({"spec.scaling": DELETE, "spec.replicas": 1})
    create(custom, namespace, fixed)
    custom.patch_namespaced_custom_object_scale(
        GROUP, VERSION, namespace, PLURAL, "case", {"spec": {"replicas": 3}}
    )
    assert (
        custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "case")["spec"]["replicas"]
        == 3
    )


def test_scale_subresource_cannot_fight_the_control_loop(custom: Any, namespace: str) -> None:
    create(custom, namespace, VALID)
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object_scale(
            GROUP, VERSION, namespace, PLURAL, "case", {"spec": {"replicas": 3}}
        )
    assert caught.value.status == 422
    assert "spec.replicas" in caught.value.body


def test_status_written_by_the_operator_shows_in_printer_columns(
    custom: Any, namespace: str, api_client: Any
) -> None:
    create(custom, namespace, VALID)
    status = {
        "observedGeneration": 1,
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "AllReplicasReady", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "MetricsAvailable", "status": "False", "reason": "NoSamples", "lastTransitionTime": "2026-01-01T00:00:00Z"},
        ],
        "replicas": 2,
        "readyReplicas": 2,
        "selector": "app.kubernetes.io/instance=case",
        "maxNumSeqs": {"engine": 128, "effective": 96},
        "utilization": {"batch": 0.78, "kvCache": 0.61, "queue": 0},
        "decisions": [{"time": "2026-01-01T00:00:00Z", "action": "ScaleUp", "from": 1, "to": 2, "reason": "batch 0.93 > 0.8"}],
        "cost": {"gpuHours": 12.5, "usdPer1MTokens": 0.21},
    }  # fmt: skip
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "case", {"status": status}
    )
    stored = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "case")
    parsed = InferenceModel.model_validate(stored).status
    assert parsed is not None
    assert parsed.max_num_seqs is not None
    assert parsed.max_num_seqs.effective == 96
    assert parsed.decisions[0].from_ == 1

    table = _table(api_client, namespace)
    names = [column["name"] for column in table["columnDefinitions"]]
    cells = dict(zip(names, table["rows"][0]["cells"], strict=True))
    assert cells["Ready"] == "True"
    assert cells["Replicas"] == 2
    assert cells["MaxNumSeqs"] == 96
    assert cells["Model"] == "hf://meta-llama/Llama-3.1-8B-Instruct"


def _table(api_client: Any, namespace: str) -> dict[str, Any]:
    """What `kubectl get im` shows: the apiserver's Table rendering with the printer columns."""
    request = api_client.param_serialize(
        "GET",
        f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}",
        header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        auth_settings=["BearerToken"],
    )
    response = api_client.call_api(*request)
    response.read()
    table: dict[str, Any] = json.loads(response.data)
    return table
