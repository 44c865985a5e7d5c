"""`spec.tiers` and `spec.selection` of an InferenceRouter: the models it fronts, cheapest first,
and how it picks the tier that serves a request."""

from __future__ import annotations

import re
from typing import Annotated, Self

from pydantic import ConfigDict, Field, StringConstraints, field_validator, model_validator

from thrifty.api.base import CelRule, SpecModel, cel_rules

MAX_TIERS = 8
MAX_RULES = 32
MAX_KEYWORDS = 64
MAX_HEADERS = 8
MAX_ALIASES = 16

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""A DNS-1123 label: tier names appear in metric labels, and model names are object names."""
HEADER_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$"
"""Lower-case HTTP header names (HTTP header names are case-insensitive; the router lower-cases)."""
ALIAS_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9_.:/]*[A-Za-z0-9])?$"
CONFIG_MAP_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=63)]
HeaderName = Annotated[str, StringConstraints(pattern=HEADER_NAME_PATTERN, max_length=128)]
HeaderValue = Annotated[str, StringConstraints(max_length=256)]
Keyword = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Alias = Annotated[str, StringConstraints(pattern=ALIAS_PATTERN, max_length=128)]

RULE_HAS_A_CONDITION = CelRule(
    rule=(
        "has(self.minPromptTokens) || has(self.maxPromptTokens) || has(self.keywords)"
        " || has(self.regex) || has(self.headers) || has(self.models)"
    ),
    message=(
        "spec.selection.rules[] needs at least one condition (minPromptTokens, maxPromptTokens, "
        "keywords, regex, headers or models); a rule without one would match every request: "
        "use spec.selection.defaultTier for that"
    ),
)
PROMPT_BOUNDS_ORDERED = CelRule(
    rule=(
        "!has(self.minPromptTokens) || !has(self.maxPromptTokens) || self.minPromptTokens <= self.maxPromptTokens"
    ),
    message=(
        "spec.selection.rules[].minPromptTokens must be less than or equal to maxPromptTokens "
        "(no prompt could match otherwise)"
    ),
    field_path=".minPromptTokens",
)


class TierSpec(SpecModel):
    """One tier: an InferenceModel in the router's namespace and what its tokens cost."""

    name: Name
    """The tier's name, unique within the router: what rules and the classifier name, what
    clients may put in the OpenAI `model` field to pin the tier, and the `tier` label of the
    router's metrics. Example: `small`."""

    model: Name
    """The InferenceModel (in the router's namespace) that serves this tier. The router sends
    requests to the ready pods behind the model's Service, found through its EndpointSlices.
    Example: `llama-8b`."""

    cost_weight: Annotated[float, Field(gt=0, le=1_000_000)] = 1.0
    """Relative price of one token on this tier, e.g. 1 for an 8B model on L4s and 12 for a 70B
    model on H100s. The router multiplies tokens by it into its estimated-cost metric
    (`thrifty_router_cost_total`); nothing else depends on it. Default 1. Example: `12`."""


class TierRule(SpecModel):
    """A rule that sends matching requests to a tier. Every condition that is set must hold (a
    rule is an AND of its conditions); a list condition holds when any of its entries does."""

    model_config = ConfigDict(json_schema_extra=cel_rules(RULE_HAS_A_CONDITION, PROMPT_BOUNDS_ORDERED))

    tier: Name
    """The tier that serves requests matching this rule; must be one of spec.tiers[].name.
    Example: `large`."""

    min_prompt_tokens: Annotated[int, Field(ge=0, le=16_777_216)] | None = None
    """Match prompts of at least this many tokens. The router has no tokenizer: it counts one
    token per four characters of the messages' text, which is close for English under Llama 3
    and Qwen tokenizers (code and other languages run denser, so set thresholds with margin).
    Example: `4000`."""

    max_prompt_tokens: Annotated[int, Field(ge=0, le=16_777_216)] | None = None
    """Match prompts of at most this many tokens (counted as for minPromptTokens). Example: `512`."""

    keywords: Annotated[tuple[Keyword, ...], Field(max_length=MAX_KEYWORDS)] | None = None
    """Match when the prompt (every message's text) contains any of these words or phrases,
    compared case-insensitively. Example: `["prove", "step by step"]`."""

    regex: Annotated[str, StringConstraints(min_length=1, max_length=1024)] | None = None
    """Match when this regular expression (Python `re` syntax, searched anywhere) matches the
    prompt text. Use `(?i)` for case-insensitive matching. Example: `(?i)\\b(sql|select .* from)\\b`."""

    headers: Annotated[dict[HeaderName, HeaderValue], Field(max_length=MAX_HEADERS)] | None = None
    """Match when the request carries each of these headers with exactly this value (names are
    lower-case; HTTP header names are case-insensitive). Example: `{x-task-type: code}`."""

    models: Annotated[tuple[Alias, ...], Field(max_length=MAX_ALIASES)] | None = None
    """Match when the OpenAI `model` field of the request is one of these aliases, so clients can
    ask for a class of model by name. Example: `["gpt-4o", "smart"]`."""

    @field_validator("regex")
    @classmethod
    def _regex_compiles(cls, pattern: str | None) -> str | None:
        if pattern is None:
            return None
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(
                f"spec.selection.rules[].regex {pattern!r} is not a valid regular expression: {error}"
            ) from None
        return pattern

    @model_validator(mode="after")
    def _conditions(self) -> Self:
        conditions = (
            self.min_prompt_tokens,
            self.max_prompt_tokens,
            self.keywords,
            self.regex,
            self.headers,
            self.models,
        )
        if all(condition is None for condition in conditions):
            raise RULE_HAS_A_CONDITION.violation(f"a rule for tier {self.tier} with no condition")
        low, high = self.min_prompt_tokens, self.max_prompt_tokens
        if low is not None and high is not None and low > high:
            raise PROMPT_BOUNDS_ORDERED.violation(f"minPromptTokens {low} > maxPromptTokens {high}")
        return self


class ConfigMapKeyRef(SpecModel):
    """One key of a ConfigMap in the router's namespace."""

    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253)]
    """The ConfigMap's name. Example: `router-classifier`."""

    key: Annotated[str, StringConstraints(pattern=CONFIG_MAP_KEY_PATTERN, max_length=253)] = "classifier.json"
    """The key that holds the classifier. Default `classifier.json` (what `thrifty router train`
    writes)."""


class ClassifierSpec(SpecModel):
    """A trained tier classifier: `thrifty router train` fits it from prompts labelled with the
    tier that served them well, and stores it in a ConfigMap. It predicts a tier and a confidence
    for requests that no rule matched."""

    config_map: ConfigMapKeyRef
    """Where the classifier is stored. Its tier names must be names of spec.tiers; predictions of
    other names are ignored (the default tier serves instead)."""

    min_confidence: Annotated[float, Field(ge=0, le=1)] = 0.6
    """Below this confidence (the predicted tier's probability) the router does not trust a
    prediction: with `LowConfidence` in spec.escalation.triggers it sends the request one tier above the
    prediction, otherwise to the default tier. Default 0.6. Example: `0.7`."""


class SelectionSpec(SpecModel):
    """How the tier is chosen: a requested tier name pins it; else the first matching rule;
    else the classifier's prediction; else the default tier."""

    rules: Annotated[tuple[TierRule, ...], Field(max_length=MAX_RULES)] = ()
    """Rules tried in order; the first that matches picks the tier."""

    classifier: ClassifierSpec | None = None
    """A trained classifier, consulted when no rule matches; unset uses none."""

    default_tier: Name | None = None
    """The tier for requests no rule or classifier placed; must be one of spec.tiers[].name.
    Unset means the first (cheapest) tier. Example: `small`."""
