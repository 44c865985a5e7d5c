"""The pydantic models refuse every InferenceModel the apiserver refuses, naming the same field.

The cases are the ones tests/integration/test_crd_validation.py sends to the real apiserver, loaded
from that file so the two lists can never drift apart.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import ValidationError

from thrifty.api import InferenceModel, describe_validation_error, inference_model_crd


def _load_cases() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "integration" / "test_crd_validation.py"
    spec = importlib.util.spec_from_file_location("crd_validation_cases", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


CASES = _load_cases()


def _without_positions(path: str) -> str:
    """`tolerations[0].value` and the rule text `tolerations[].value` both become `tolerations.value`."""
    return re.sub(r"\[\d*\]", "", path).replace(": ", " ").replace(".[key]", "")


def test_the_valid_base_passes() -> None:
    model = InferenceModel.model_validate(CASES.VALID)
    assert model.spec.resources.data_parallel_size == 2


@pytest.mark.parametrize("case", CASES.INVALID_CASES, ids=lambda case: case.id)
def test_pydantic_refuses_what_the_apiserver_refuses(case: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        InferenceModel.model_validate(CASES.mutated(case.changes))
    described = describe_validation_error(caught.value)
    assert _without_positions(case.field) in _without_positions(described), described


def _cel_messages(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [rule["message"] for rule in node.get("x-kubernetes-validations", [])]
        return own + [message for value in node.values() for message in _cel_messages(value)]
    if isinstance(node, list):
        return [message for value in node for message in _cel_messages(value)]
    return []


def test_every_cel_rule_has_a_pydantic_twin_and_an_invalid_case() -> None:
    """Each hand-written CEL rule's message must come out of pydantic for at least one case, so
    every rule is both mirrored in Python and sent to the apiserver by the integration test."""
    crd_schema = inference_model_crd()["spec"]["versions"][0]["schema"]
    # Key checks of maps are generated from pydantic's key patterns, which pydantic enforces itself.
    messages = [m for m in _cel_messages(crd_schema) if not m.startswith("every key of")]
    described = []
    for case in CASES.INVALID_CASES:
        try:
            InferenceModel.model_validate(CASES.mutated(case.changes))
        except ValidationError as error:
            described.append(describe_validation_error(error))
    uncovered = [m for m in messages if not any(m in text for text in described)]
    assert len(messages) >= 15
    assert uncovered == []
