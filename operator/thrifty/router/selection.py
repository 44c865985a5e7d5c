"""Which tier serves a request: pure, from the prompt, its headers and the router's spec.

Order of precedence, first that applies wins:

1. the request names a tier (its name or its model's served name) in the OpenAI `model` field;
2. the first rule of spec.selection.rules that matches;
3. the classifier's prediction, when it is confident enough (below spec's minConfidence, one
   tier above the prediction if spec.escalation.triggers has LowConfidence, else the default tier);
   predictions of names that are not tiers are ignored;
4. the default tier.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from thrifty.api import EscalationTrigger, InferenceRouterSpec, TierRule
from thrifty.router.classifier import TierClassifier
from thrifty.router.prompt import Prompt


class SelectedBy(StrEnum):
    PINNED = "pinned"
    RULE = "rule"
    CLASSIFIER = "classifier"
    LOW_CONFIDENCE = "low_confidence"
    """The classifier was unsure; the tier above its prediction was chosen."""
    DEFAULT = "default"


@dataclass(frozen=True, slots=True)
class TierChoice:
    tier: int
    """Position in spec.tiers."""
    selected_by: SelectedBy
    rule: int | None = None
    """Position of the matching rule in spec.selection.rules."""
    confidence: float | None = None
    """The classifier's probability for its prediction, when it was asked."""
    predicted: int | None = None
    """The classifier's predicted tier, when it was asked."""


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    tier: int
    min_tokens: int | None
    max_tokens: int | None
    keywords: tuple[str, ...] | None
    regex: re.Pattern[str] | None
    headers: tuple[tuple[str, str], ...] | None
    models: frozenset[str] | None

    def matches(self, prompt: Prompt, lowered: str, headers: Mapping[str, str]) -> bool:
        if self.min_tokens is not None and prompt.tokens < self.min_tokens:
            return False
        if self.max_tokens is not None and prompt.tokens > self.max_tokens:
            return False
        if self.models is not None and prompt.requested_model not in self.models:
            return False
        if self.headers is not None and any(headers.get(name) != value for name, value in self.headers):
            return False
        if self.keywords is not None and not any(keyword in lowered for keyword in self.keywords):
            return False
        return self.regex is None or self.regex.search(prompt.text) is not None


class TierSelector:
    """Rules compiled once per configuration; `select` runs per request.

    selector = TierSelector(spec, served_names=["llama-8b", "llama-70b"], classifier=None)
    choice = selector.select(prompt, request.headers)
    """

    def __init__(
        self,
        spec: InferenceRouterSpec,
        *,
        served_names: Sequence[str],
        classifier: TierClassifier | None,
    ) -> None:
        tier_names = [tier.name for tier in spec.tiers]
        self._pins: dict[str, int] = {}
        for index, served in enumerate(served_names):
            self._pins.setdefault(served, index)
        for index, name in enumerate(tier_names):
            self._pins[name] = index
        self._rules = tuple(_compile(rule, spec.tier_index(rule.tier)) for rule in spec.selection.rules)
        self._needs_lowered = any(rule.keywords is not None for rule in self._rules)
        self._default = spec.tier_index(spec.default_tier)
        self._classifier = classifier
        self._tier_of_label = {name: index for index, name in enumerate(tier_names)}
        classifier_spec = spec.selection.classifier
        self._min_confidence = classifier_spec.min_confidence if classifier_spec is not None else 0.0
        self._escalate_unsure = EscalationTrigger.LOW_CONFIDENCE in spec.escalation.triggers
        self._tier_count = len(tier_names)

    def select(self, prompt: Prompt, headers: Mapping[str, str]) -> TierChoice:
        """The tier for one request. `headers` must look names up case-insensitively (aiohttp's
        request headers do) or hold lower-case names."""
        pinned = self._pins.get(prompt.requested_model or "")
        if pinned is not None:
            return TierChoice(pinned, SelectedBy.PINNED)
        lowered = prompt.text.lower() if self._needs_lowered else prompt.text
        for position, rule in enumerate(self._rules):
            if rule.matches(prompt, lowered, headers):
                return TierChoice(rule.tier, SelectedBy.RULE, rule=position)
        if self._classifier is not None:
            prediction = self._classifier.predict(prompt.text)
            tier = self._tier_of_label.get(prediction.tier)
            if tier is not None:
                confidence = prediction.confidence
                if confidence >= self._min_confidence:
                    return TierChoice(tier, SelectedBy.CLASSIFIER, confidence=confidence, predicted=tier)
                if self._escalate_unsure:
                    # Unsure about the top tier: nothing is above it, and the default is cheaper.
                    above = min(tier + 1, self._tier_count - 1)
                    return TierChoice(above, SelectedBy.LOW_CONFIDENCE, confidence=confidence, predicted=tier)
                return TierChoice(self._default, SelectedBy.DEFAULT, confidence=confidence, predicted=tier)
        return TierChoice(self._default, SelectedBy.DEFAULT)


def _compile(rule: TierRule, tier: int) -> _CompiledRule:
    return _CompiledRule(
        tier=tier,
        min_tokens=rule.min_prompt_tokens,
        max_tokens=rule.max_prompt_tokens,
        keywords=tuple(keyword.lower() for keyword in rule.keywords) if rule.keywords is not None else None,
        regex=re.compile(rule.regex) if rule.regex is not None else None,
        headers=tuple(sorted(rule.headers.items())) if rule.headers is not None else None,
        models=frozenset(rule.models) if rule.models is not None else None,
    )
