"""Tier selection: a pinned tier, then rules in order, then the classifier, then the default."""

from __future__ import annotations

from typing import Any

import pytest

from thrifty.api import InferenceRouterSpec
from thrifty.router.classifier import TierClassifier
from thrifty.router.prompt import Prompt, read_prompt
from thrifty.router.selection import SelectedBy, TierSelector

TIERS = [
    {"name": "small", "model": "llama-8b"},
    {"name": "medium", "model": "qwen-32b"},
    {"name": "large", "model": "llama-70b"},
]
SERVED = ["llama-8b-instruct", "qwen-32b", "llama-70b-instruct"]


def selector(classifier: TierClassifier | None = None, **spec: Any) -> TierSelector:
    parsed = InferenceRouterSpec.model_validate({"tiers": TIERS, **spec})
    return TierSelector(parsed, served_names=SERVED, classifier=classifier)


def chat(text: str, *, model: str | None = None) -> Prompt:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": text}]}
    if model is not None:
        body["model"] = model
    return read_prompt("chat", body)


RULES = {
    "selection": {
        "rules": [
            {"tier": "large", "keywords": ["Prove", "step by step"]},
            {"tier": "medium", "headers": {"x-task-type": "code"}},
            {"tier": "large", "minPromptTokens": 1000},
            {"tier": "medium", "regex": r"(?i)\bselect\b.*\bfrom\b"},
            {"tier": "large", "models": ["smart"]},
            {"tier": "small", "maxPromptTokens": 20, "keywords": ["hi"]},
        ],
        "defaultTier": "medium",
    }
}


@pytest.mark.parametrize(
    ("prompt", "headers", "tier", "rule"),
    [
        (chat("please PROVE it"), {}, 2, 0),
        (chat("write a function"), {"x-task-type": "code"}, 1, 1),
        (chat("x" * 4000), {}, 2, 2),
        (chat("SELECT name FROM users"), {}, 1, 3),
        (chat("hello", model="smart"), {}, 2, 4),
        (chat("hi there"), {}, 0, 5),
    ],
)
def test_first_matching_rule_picks_the_tier(
    prompt: Prompt, headers: dict[str, str], tier: int, rule: int
) -> None:
    choice = selector(**RULES).select(prompt, headers)

    assert (choice.tier, choice.selected_by, choice.rule) == (tier, SelectedBy.RULE, rule)


def test_all_conditions_of_a_rule_must_hold() -> None:
    long_greeting = chat("hi " + "y" * 200)

    assert selector(**RULES).select(long_greeting, {}).selected_by == SelectedBy.DEFAULT


def test_no_rule_matching_means_the_default_tier() -> None:
    choice = selector(**RULES).select(chat("tell me a story"), {})

    assert (choice.tier, choice.selected_by) == (1, SelectedBy.DEFAULT)


def test_default_tier_defaults_to_the_first() -> None:
    assert selector().select(chat("anything"), {}).tier == 0


@pytest.mark.parametrize(("model", "tier"), [("large", 2), ("qwen-32b", 1), ("small", 0)])
def test_requesting_a_tier_or_its_served_model_pins_it(model: str, tier: int) -> None:
    choice = selector(**RULES).select(chat("please prove it", model=model), {})

    assert (choice.tier, choice.selected_by) == (tier, SelectedBy.PINNED)


def test_the_router_name_is_not_a_pin() -> None:
    assert selector(**RULES).select(chat("hi", model="assistant"), {}).selected_by == SelectedBy.RULE


def fixed(tier: str, confidence: float) -> TierClassifier:
    """A classifier that answers `tier` with `confidence` for any text (bias only)."""
    import math

    other = "small" if tier != "small" else "large"
    odds = math.log(confidence / (1 - confidence))
    return TierClassifier([tier, other], [odds, 0.0], {})


CLASSIFIER = {"selection": {"classifier": {"configMap": {"name": "c"}, "minConfidence": 0.7}}}


def test_confident_prediction_picks_its_tier() -> None:
    choice = selector(fixed("medium", 0.9), **CLASSIFIER).select(chat("anything"), {})

    assert (choice.tier, choice.selected_by) == (1, SelectedBy.CLASSIFIER)
    assert choice.confidence == pytest.approx(0.9)


def test_unsure_prediction_goes_one_tier_up_when_low_confidence_escalates() -> None:
    choice = selector(fixed("small", 0.6), **CLASSIFIER).select(chat("anything"), {})

    assert (choice.tier, choice.selected_by) == (1, SelectedBy.LOW_CONFIDENCE)


def test_unsure_about_the_top_tier_stays_on_it() -> None:
    assert selector(fixed("large", 0.6), **CLASSIFIER).select(chat("x"), {}).tier == 2


def test_unsure_prediction_without_low_confidence_escalation_takes_the_default() -> None:
    spec = {**CLASSIFIER, "escalation": {"triggers": ["Error"]}}

    choice = selector(fixed("large", 0.6), **spec).select(chat("x"), {})

    assert (choice.tier, choice.selected_by) == (0, SelectedBy.DEFAULT)


def test_prediction_of_an_unknown_tier_is_ignored() -> None:
    unknown = TierClassifier(["tiny", "small"], [5.0, 0.0], {})

    assert selector(unknown, **CLASSIFIER).select(chat("x"), {}).selected_by == SelectedBy.DEFAULT


def test_rules_come_before_the_classifier() -> None:
    spec = {"selection": {**RULES["selection"], **CLASSIFIER["selection"]}}

    assert selector(fixed("small", 0.99), **spec).select(chat("prove it"), {}).selected_by == SelectedBy.RULE
