"""`helm template` piped to `kubeconform -strict`, offline: built-in kinds against schemas from the
pinned Kubernetes release's OpenAPI document, our kinds against schemas converted from crds/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from support import chart_tool

REPO = Path(__file__).resolve().parents[2]


validate = chart_tool("validate")
kube_schemas = chart_tool("kube_schemas")
crd_json_schemas = chart_tool("crd_json_schemas")


def verdicts(**kwargs: Any) -> list[Any]:
    try:
        return list(validate.kubeconform(**kwargs))
    except FileNotFoundError as error:
        pytest.fail(str(error))


def problems(results: list[Any]) -> list[str]:
    """Everything but a valid object or one of the kinds skipped by name (no schema offline)."""
    skippable = {gvk.rsplit("/", 1)[1] for gvk in validate.SKIPPED_KINDS}
    return [
        f"{r.source} {r.kind} {r.name}: {r.status} {r.message}"
        for r in results
        if r.status != "valid" and not (r.status == "skipped" and r.kind in skippable)
    ]


@pytest.mark.parametrize("values", [(), validate.ALL_TOGGLES_ON], ids=["defaults", "every-toggle-on"])
def test_rendered_chart_is_valid_for_the_pinned_kubernetes(values: tuple[str, ...]) -> None:
    results = verdicts(stdin=validate.render(values))
    assert problems(results) == []
    kinds = {r.kind for r in results if r.status == "valid"}
    assert {"Deployment", "ClusterRole", "CustomResourceDefinition", "ServiceAccount", "Service"} <= kinds


def test_only_monitors_are_skipped_and_only_when_enabled() -> None:
    skipped = {
        (r.kind, r.name)
        for r in verdicts(stdin=validate.render(validate.ALL_TOGGLES_ON))
        if r.status == "skipped"
    }
    assert skipped == {
        ("ServiceMonitor", "thrifty"),
        ("PodMonitor", "thrifty-engines"),
        ("PodMonitor", "thrifty-routers"),
    }


def test_examples_and_health_test_objects_are_valid_custom_resources() -> None:
    files = sorted((REPO / "examples").glob("*.yaml")) + sorted(
        (REPO / "manifests" / "argocd" / "health_test").glob("*/testdata/*.yaml")
    )
    results = verdicts(paths=files)
    assert problems(results) == []
    assert {r.kind for r in results} == {"InferenceModel", "InferenceRouter"}
    assert len(results) >= len(files)


def test_a_misspelt_field_is_caught_in_a_builtin_kind_and_in_ours(tmp_path: Path) -> None:
    rendered = validate.render().replace("enableServiceLinks: false", "enableServiceLink: false")
    invalid = [r for r in verdicts(stdin=rendered) if r.status != "valid"]
    assert sorted(r.kind for r in invalid) == ["Deployment", "Pod"]
    assert all("additional properties 'enableServiceLink' not allowed" in r.message for r in invalid)

    example = (REPO / "examples" / "llama-3.1-8b-fp8-h100.yaml").read_text()
    bad_model = tmp_path / "model.yaml"
    bad_model.write_text(example.replace("maxNumSeqs: 256", "maxNumSeq: 256"))
    (verdict,) = verdicts(paths=[bad_model])
    assert verdict.status == "invalid"
    assert "'maxNumSeq' not allowed" in verdict.message


def test_a_kind_without_a_schema_fails_instead_of_passing(tmp_path: Path) -> None:
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: x}\nspec: {}\n")
    (verdict,) = verdicts(paths=[unknown])
    assert verdict.status == "error"
    assert "could not find schema" in verdict.message


def test_crd_schema_keeps_bounds_and_refuses_unknown_fields() -> None:
    crd = yaml.safe_load((REPO / "crds" / "thrifty.dev_inferencemodels.yaml").read_text())
    (schema,) = crd_json_schemas.crd_schemas(crd).values()
    batching = schema["properties"]["spec"]["properties"]["batching"]
    assert batching["additionalProperties"] is False
    utilization = batching["properties"]["gpuMemoryUtilization"]
    assert (utilization["minimum"], utilization["exclusiveMinimum"]) == (0, True)  # draft 4's form
    assert schema["properties"]["kind"] == {"type": "string", "enum": ["InferenceModel"]}
    cpu = schema["properties"]["spec"]["properties"]["resources"]["properties"]["cpu"]
    assert cpu["type"] == ["integer", "string"]


def test_kubernetes_schemas_come_from_the_pinned_release() -> None:
    source = kube_schemas.committed_source()
    assert source["kubernetes"] == kube_schemas.pinned_kubernetes_version(), (
        "testbed/gomod/kubernetes pins another Kubernetes: run "
        "`.venv/bin/python tools/chart/generate.py --kubernetes-schemas`"
    )


def test_committed_kubernetes_schemas_match_the_openapi_document() -> None:
    version = kube_schemas.pinned_kubernetes_version()
    swagger = kube_schemas.swagger_path(version)
    if not swagger.exists():
        pytest.fail(
            f"{swagger} is missing: run `make testbed-build` (Go fetches the pinned Kubernetes module)"
        )
    expected = kube_schemas.schema_files(swagger.read_bytes(), version)
    committed = {p.name: p.read_text() for p in kube_schemas.SCHEMAS_DIR.iterdir()}
    assert committed == expected, "run `.venv/bin/python tools/chart/generate.py --kubernetes-schemas`"


def test_kubernetes_schema_is_strict_and_accepts_what_the_apiserver_accepts() -> None:
    deployment = json.loads((kube_schemas.SCHEMAS_DIR / "deployment-apps-v1.json").read_text())
    definitions = deployment["definitions"]
    assert deployment["additionalProperties"] is False
    assert deployment["properties"]["kind"]["enum"] == ["Deployment"]
    assert definitions["io.k8s.api.core.v1.PodSpec"]["additionalProperties"] is False
    assert definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] == {"type": ["integer", "string"]}
    assert definitions["io.k8s.apimachinery.pkg.api.resource.Quantity"] == {"type": ["number", "string"]}
    labels = definitions["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]["labels"]
    assert labels == {"additionalProperties": {"type": "string"}, "type": "object"}


def test_schema_file_names_follow_kubeconforms_template() -> None:
    assert kube_schemas.schema_file_name("apps/v1", "Deployment") == "deployment-apps-v1.json"
    assert kube_schemas.schema_file_name("v1", "ServiceAccount") == "serviceaccount-v1.json"
    assert (
        kube_schemas.schema_file_name("rbac.authorization.k8s.io/v1", "ClusterRole")
        == "clusterrole-rbac-v1.json"
    )
