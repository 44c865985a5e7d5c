"""The CRD generated from the models: committed, structural, documented, bounded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from thrifty.api import crd_files, inference_model_crd
from thrifty.cli import main

CRDS_DIR = Path(__file__).resolve().parents[2] / "crds"
FORBIDDEN_KEYS = {
    "$ref",
    "$defs",
    "oneOf",
    "allOf",
    "not",
    "const",
    "title",
    "propertyNames",
    "patternProperties",
}


def openapi_schema() -> dict[str, Any]:
    schema: dict[str, Any] = inference_model_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path, e.g. ("spec.resources.tolerations[]", {...})."""
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from nodes(child, f"{path}.{name}" if path else name)
    if "items" in schema:
        yield from nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize(("name", "text"), sorted(crd_files().items()))
def test_committed_crd_matches_the_models(name: str, text: str) -> None:
    committed = CRDS_DIR / name
    assert committed.exists(), f"{committed} is missing: run `thrifty crds` and commit crds/"
    assert committed.read_text() == text, f"{committed} is stale: run `thrifty crds` and commit crds/"


def test_generation_is_deterministic() -> None:
    assert crd_files() == crd_files()


def test_schema_is_structural() -> None:
    problems = []
    for path, node in nodes(openapi_schema()):
        problems += [f"{path}: {key}" for key in FORBIDDEN_KEYS & node.keys()]
        if node.get("additionalProperties") is False:
            problems.append(f"{path}: additionalProperties false")
        if "anyOf" in node and node.get("x-kubernetes-int-or-string") is not True:
            problems.append(f"{path}: anyOf other than int-or-string")
        if "anyOf" not in node and "type" not in node:
            problems.append(f"{path}: no type")
        if "properties" in node and node.get("type") != "object":
            problems.append(f"{path}: properties on a non-object")
    assert problems == []


def test_quantities_are_int_or_string() -> None:
    cpu = openapi_schema()["properties"]["spec"]["properties"]["resources"]["properties"]["cpu"]
    assert cpu["x-kubernetes-int-or-string"] is True
    assert cpu["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert "pattern" in cpu


def test_every_field_is_documented_for_kubectl_explain() -> None:
    undocumented = [
        path
        for path, node in nodes(openapi_schema()["properties"]["spec"], "spec")
        if not path.endswith(("[]", "{}")) and not node.get("description")
    ]
    assert undocumented == []


def test_spec_lists_and_strings_are_bounded_so_cel_stays_within_its_cost_budget() -> None:
    unbounded = []
    for path, node in nodes(openapi_schema()["properties"]["spec"], "spec"):
        if node.get("type") == "array" and "maxItems" not in node:
            unbounded.append(path)
        if node.get("type") == "string" and "enum" not in node and "maxLength" not in node:
            unbounded.append(path)
        if node.get("type") == "object" and "additionalProperties" in node and "maxProperties" not in node:
            unbounded.append(path)
    assert unbounded == []


def test_every_cel_rule_names_the_field_it_guards() -> None:
    rules = [
        (path, rule)
        for path, node in nodes(openapi_schema())
        for rule in node.get("x-kubernetes-validations", [])
    ]
    assert len(rules) >= 15
    assert [path for path, rule in rules if "spec." not in rule["message"]] == []


def test_cross_field_rules_exist_for_the_documented_invariants() -> None:
    messages = " ".join(
        rule["message"]
        for _, node in nodes(openapi_schema())
        for rule in node.get("x-kubernetes-validations", [])
    )
    for phrase in (
        "spec.scaling.replicas.min must be less than or equal to",
        "spec.scaling.tuneMaxNumSeqs.min must be less than or equal to",
        "tensorParallelSize must divide spec.resources.gpu.count",
        "draftModel is required when method is draft",
        "ngram is only allowed when method is ngram",
        "promptLookupMin must be less than or equal to promptLookupMax",
        "maxNumBatchedTokens must be greater than or equal to spec.batching.maxNumSeqs",
    ):
        assert phrase in messages


def test_optional_fields_are_not_required_and_defaults_are_kept() -> None:
    spec = openapi_schema()["properties"]["spec"]
    assert spec["required"] == ["model", "resources"]
    batching = spec["properties"]["batching"]
    assert batching["default"] == {"maxNumSeqs": 256}
    assert batching["properties"]["maxNumSeqs"]["default"] == 256
    assert "default" not in spec["properties"]["engine"], (
        "an empty default would be written into every object"
    )


def test_exclusive_bounds_use_the_openapi_v3_form() -> None:
    utilization = openapi_schema()["properties"]["spec"]["properties"]["batching"]["properties"][
        "gpuMemoryUtilization"
    ]
    assert (utilization["minimum"], utilization["exclusiveMinimum"], utilization["maximum"]) == (0, True, 1)


def test_names_subresources_and_printer_columns() -> None:
    crd = inference_model_crd()
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"], names["categories"]) == (
        "InferenceModel",
        "inferencemodels",
        ["im"],
        ["thrifty"],
    )
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"] if not c.get("priority")}
    assert columns == {
        "Ready": '.status.conditions[?(@.type=="Ready")].status',
        "Replicas": ".status.replicas",
        "MaxNumSeqs": ".status.maxNumSeqs.effective",
        "Model": ".spec.model.source",
        "Age": ".metadata.creationTimestamp",
    }


def test_conditions_are_a_map_keyed_by_type() -> None:
    conditions = openapi_schema()["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]


def test_yaml_parses_back_to_the_crd_object() -> None:
    text = crd_files()["thrifty.dev_inferencemodels.yaml"]
    assert text.startswith("# Generated by `thrifty crds`")
    assert yaml.safe_load(text) == inference_model_crd()


def test_cli_check_fails_when_stale_and_passes_after_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "crds"
    assert main(["crds", "--out", str(out), "--check"]) == 1
    assert "run `thrifty crds" in capsys.readouterr().err
    assert not out.exists(), "--check must not write"
    assert main(["crds", "--out", str(out)]) == 0
    assert main(["crds", "--out", str(out), "--check"]) == 0
    (out / "thrifty.dev_inferencemodels.yaml").write_text("stale")
    assert main(["crds", "--out", str(out), "--check"]) == 1
