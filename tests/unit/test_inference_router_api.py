"""The InferenceRouter API: defaults, cross-field rules with actionable messages, and its CRD."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from thrifty.api import (
    AffinityKey,
    EscalationTrigger,
    InferenceRouter,
    InferenceRouterSpec,
    crd_files,
    describe_validation_error,
    inference_router_crd,
)

TWO_TIERS: list[dict[str, Any]] = [
    {"name": "small", "model": "llama-8b", "costWeight": 1},
    {"name": "large", "model": "llama-70b", "costWeight": 12},
]


def spec(**fields: Any) -> dict[str, Any]:
    return {"tiers": TWO_TIERS, **fields}


def problems(body: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        InferenceRouterSpec.model_validate(body)
    return describe_validation_error(caught.value)


def test_minimal_router_takes_documented_defaults() -> None:
    router = InferenceRouter.model_validate({"metadata": {"name": "assistant"}, "spec": spec()})

    assert router.name == "assistant"
    assert router.spec.default_tier == "small"
    assert router.spec.affinity.key == AffinityKey.PREFIX_BLOCKS
    assert router.spec.affinity.bounded_load_factor is None
    assert set(router.spec.escalation.triggers) == set(EscalationTrigger)
    assert router.spec.escalation.attempt_timeout_seconds == 60
    assert router.spec.admission.queue_limit == 1000
    assert router.spec.admission.queue_timeout_seconds == 30
    assert router.spec.admission.max_in_flight_per_replica is None
    assert router.spec.tier_index("large") == 1


def test_spec_round_trips_through_its_json_form() -> None:
    body = spec(
        selection={
            "rules": [{"tier": "large", "minPromptTokens": 4000, "headers": {"x-task-type": "code"}}],
            "classifier": {"configMap": {"name": "router-classifier"}, "minConfidence": 0.7},
            "defaultTier": "small",
        },
        affinity={"key": "Header", "header": "x-session-id", "boundedLoadFactor": 1.5},
        admission={"maxInFlightPerReplica": 64, "queueLimit": 10, "queueTimeout": "5s"},
    )

    parsed = InferenceRouterSpec.model_validate(body)

    assert InferenceRouterSpec.model_validate(parsed.model_dump(mode="json")) == parsed
    assert parsed.selection.classifier is not None
    assert parsed.selection.classifier.config_map.key == "classifier.json"


def test_rule_naming_an_unknown_tier_is_refused_with_the_tier_names() -> None:
    message = problems(spec(selection={"rules": [{"tier": "medium", "keywords": ["x"]}]}))

    assert "spec.selection.rules[].tier must be the name of one of spec.tiers" in message
    assert "small, large" in message


def test_default_tier_must_be_a_tier() -> None:
    assert "spec.selection.defaultTier must be the name of one of spec.tiers" in problems(
        spec(selection={"defaultTier": "huge"})
    )


@pytest.mark.parametrize(
    ("tiers", "phrase"),
    [
        ([TWO_TIERS[0], {**TWO_TIERS[1], "name": "small"}], "spec.tiers[].name must be unique"),
        ([TWO_TIERS[0], {**TWO_TIERS[1], "model": "llama-8b"}], "spec.tiers[].model must be unique"),
    ],
)
def test_tiers_need_unique_names_and_models(tiers: list[dict[str, Any]], phrase: str) -> None:
    assert phrase in problems({"tiers": tiers})


def test_a_router_needs_a_tier() -> None:
    assert "tiers" in problems({"tiers": []})


def test_rule_without_a_condition_is_refused() -> None:
    message = problems(spec(selection={"rules": [{"tier": "large"}]}))

    assert "needs at least one condition" in message
    assert "spec.selection.defaultTier" in message


def test_rule_prompt_bounds_must_be_ordered() -> None:
    message = problems(
        spec(selection={"rules": [{"tier": "large", "minPromptTokens": 10, "maxPromptTokens": 5}]})
    )

    assert "minPromptTokens must be less than or equal to maxPromptTokens" in message
    assert "minPromptTokens 10 > maxPromptTokens 5" in message


def test_rule_regex_must_compile_and_the_error_says_where() -> None:
    message = problems(spec(selection={"rules": [{"tier": "large", "regex": "(unclosed"}]}))

    assert message.startswith("selection.rules[0].regex:")
    assert "not a valid regular expression" in message


@pytest.mark.parametrize(
    "affinity",
    [{"key": "Header"}, {"key": "PrefixBlocks", "header": "x-session-id"}],
)
def test_header_is_required_exactly_with_the_header_key(affinity: dict[str, str]) -> None:
    assert "spec.affinity.header is required when spec.affinity.key is Header" in problems(
        spec(affinity=affinity)
    )


def test_escalation_triggers_are_listed_once() -> None:
    assert "lists a trigger twice" in problems(spec(escalation={"triggers": ["Error", "Error"]}))


def test_unknown_fields_are_refused() -> None:
    assert "tierz" in problems({**spec(), "tierz": []})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("admission", {"queueTimeout": "0s"}),
        ("escalation", {"attemptTimeout": "soon"}),
        ("affinity", {"boundedLoadFactor": 0.5}),
    ],
)
def test_out_of_range_values_are_refused(field: str, value: dict[str, Any]) -> None:
    assert field in problems(spec(**{field: value}))


# ---- the CRD ----


def schema() -> dict[str, Any]:
    crd = inference_router_crd()
    return dict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from nodes(child, f"{path}.{name}" if path else name)
    if "items" in node:
        yield from nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from nodes(node["additionalProperties"], f"{path}{{}}")


def test_crd_names_follow_the_inference_model_conventions() -> None:
    names = inference_router_crd()["spec"]["names"]

    assert (names["kind"], names["plural"], names["shortNames"], names["categories"]) == (
        "InferenceRouter",
        "inferencerouters",
        ["ir"],
        ["thrifty"],
    )


def test_crd_has_status_subresource_and_printer_columns() -> None:
    version = inference_router_crd()["spec"]["versions"][0]
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"] if not c.get("priority")}

    assert version["subresources"] == {"status": {}}
    assert columns == {
        "Ready": '.status.conditions[?(@.type=="Ready")].status',
        "Tiers": ".spec.tiers[*].name",
        "Default": ".spec.selection.defaultTier",
        "Affinity": ".spec.affinity.key",
        "Age": ".metadata.creationTimestamp",
    }


def test_crd_schema_is_structural() -> None:
    forbidden = {"$ref", "$defs", "oneOf", "allOf", "not", "const", "title"}
    found = [(path, key) for path, node in nodes(schema()) for key in forbidden & node.keys()]
    untyped = [path for path, node in nodes(schema()) if "type" not in node and "anyOf" not in node]

    assert found == []
    assert untyped == []


def test_every_spec_field_is_documented_for_kubectl_explain() -> None:
    undocumented = [
        path
        for path, node in nodes(schema()["properties"]["spec"], "spec")
        if not path.endswith(("[]", "{}")) and not node.get("description")
    ]

    assert undocumented == []


def test_spec_lists_strings_and_maps_are_bounded_for_cel() -> None:
    unbounded = []
    for path, node in nodes(schema()["properties"]["spec"], "spec"):
        if node.get("type") == "array" and "maxItems" not in node:
            unbounded.append(path)
        if node.get("type") == "string" and "enum" not in node and "maxLength" not in node:
            unbounded.append(path)
        if node.get("type") == "object" and "additionalProperties" in node and "maxProperties" not in node:
            unbounded.append(path)

    assert unbounded == []


def test_cross_field_rules_are_cel_rules_with_field_paths() -> None:
    rules = [rule for _, node in nodes(schema()) for rule in node.get("x-kubernetes-validations", [])]
    messages = " ".join(rule["message"] for rule in rules)

    for phrase in (
        "spec.tiers[].name must be unique",
        "spec.tiers[].model must be unique",
        "spec.selection.rules[].tier must be the name of one of spec.tiers",
        "spec.selection.defaultTier must be the name of one of spec.tiers",
        "needs at least one condition",
        "spec.affinity.header is required when spec.affinity.key is Header",
    ):
        assert phrase in messages
    assert all("spec." in rule["message"] for rule in rules)


def test_enums_and_defaults_reach_the_schema() -> None:
    spec_schema = schema()["properties"]["spec"]["properties"]

    assert spec_schema["affinity"]["properties"]["key"]["enum"] == [
        "PrefixBlocks",
        "Header",
        "FirstUserMessage",
        "None",
    ]
    assert spec_schema["affinity"]["properties"]["key"]["default"] == "PrefixBlocks"
    assert spec_schema["escalation"]["properties"]["triggers"]["x-kubernetes-list-type"] == "set"
    assert schema()["required"] == ["spec"]


def test_crd_file_is_generated_with_the_inference_model_crd() -> None:
    files = crd_files()

    assert sorted(files) == ["thrifty.dev_inferencemodels.yaml", "thrifty.dev_inferencerouters.yaml"]
    assert yaml.safe_load(files["thrifty.dev_inferencerouters.yaml"]) == inference_router_crd()
