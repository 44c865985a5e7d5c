"""The InferenceRouter resource: one OpenAI-compatible endpoint in front of several InferenceModels
(tiers), which sends each request to the cheapest tier that can serve it, escalates when that tier
fails, and keeps requests that share a prefix on the replica that holds it."""

from __future__ import annotations

from typing import Annotated, Final, Literal, Self

from pydantic import ConfigDict, Field, model_validator

from thrifty.api.base import CelRule, ObjectModel, SpecModel, cel_rules
from thrifty.api.router_policies import AdmissionSpec, AffinitySpec, EscalationSpec
from thrifty.api.router_status import InferenceRouterStatus
from thrifty.api.router_tiers import MAX_TIERS, SelectionSpec, TierSpec

ROUTER_KIND: Final = "InferenceRouter"
ROUTER_PLURAL = "inferencerouters"
ROUTER_SINGULAR = "inferencerouter"
ROUTER_SHORT_NAMES = ("ir",)

TIER_NAMES_UNIQUE = CelRule(
    rule="self.tiers.all(t, self.tiers.exists_one(u, u.name == t.name))",
    message="spec.tiers[].name must be unique: every tier needs its own name",
    field_path=".tiers",
)
TIER_MODELS_UNIQUE = CelRule(
    rule="self.tiers.all(t, self.tiers.exists_one(u, u.model == t.model))",
    message=(
        "spec.tiers[].model must be unique: two tiers on one InferenceModel cannot differ, and "
        "escalating between them would retry the same replicas"
    ),
    field_path=".tiers",
)
RULE_TIERS_EXIST = CelRule(
    rule=(
        "!has(self.selection) || !has(self.selection.rules)"
        " || self.selection.rules.all(r, self.tiers.exists(t, t.name == r.tier))"
    ),
    message="spec.selection.rules[].tier must be the name of one of spec.tiers",
    field_path=".selection.rules",
)
DEFAULT_TIER_EXISTS = CelRule(
    rule=(
        "!has(self.selection) || !has(self.selection.defaultTier)"
        " || self.tiers.exists(t, t.name == self.selection.defaultTier)"
    ),
    message="spec.selection.defaultTier must be the name of one of spec.tiers (unset means the first tier)",
    field_path=".selection.defaultTier",
)


class InferenceRouterSpec(SpecModel):
    """Desired state of one router. Thrifty runs it as a Deployment of `thrifty router` behind a
    Service of the same name, configured through a ConfigMap, and never writes the spec back."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            TIER_NAMES_UNIQUE,
            TIER_MODELS_UNIQUE,
            RULE_TIERS_EXIST,
            DEFAULT_TIER_EXISTS,
        )
    )

    tiers: Annotated[tuple[TierSpec, ...], Field(min_length=1, max_length=MAX_TIERS)]
    """The models behind the router, cheapest first. Escalation moves one entry down this list
    (to a larger, costlier tier)."""

    selection: SelectionSpec = SelectionSpec()
    """How a request's tier is chosen."""

    escalation: EscalationSpec = EscalationSpec()
    """Retrying on the next tier up when a tier fails."""

    affinity: AffinitySpec = AffinitySpec()
    """Which replica of the tier serves a request."""

    admission: AdmissionSpec = AdmissionSpec()
    """Per-replica cap and the queue in front of each tier."""

    replicas: Annotated[int, Field(ge=1, le=100)] = 1
    """Router pods. Each keeps its own picture of which replica caches which prefix, so with
    several pods the turns of one conversation that reach different pods may miss their cache;
    one pod forwards over a thousand requests per second on one core (see bench/router), so more
    than one is mostly for availability. Default 1."""

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Self:
        names = [tier.name for tier in self.tiers]
        duplicate = next((name for name in names if names.count(name) > 1), None)
        if duplicate is not None:
            raise TIER_NAMES_UNIQUE.violation(f"{duplicate!r} more than once")
        models = [tier.model for tier in self.tiers]
        duplicate = next((model for model in models if models.count(model) > 1), None)
        if duplicate is not None:
            raise TIER_MODELS_UNIQUE.violation(f"model {duplicate!r} in more than one tier")
        for rule in self.selection.rules:
            if rule.tier not in names:
                raise RULE_TIERS_EXIST.violation(f"{rule.tier!r}; tiers are {', '.join(names)}")
        default = self.selection.default_tier
        if default is not None and default not in names:
            raise DEFAULT_TIER_EXISTS.violation(f"{default!r}; tiers are {', '.join(names)}")
        return self

    @property
    def default_tier(self) -> str:
        """The tier for requests nothing else placed: spec.selection.defaultTier or the first tier."""
        return self.selection.default_tier or self.tiers[0].name

    def tier_index(self, name: str) -> int:
        """Position of a tier in spec.tiers (its escalation order); ValueError when absent."""
        for index, tier in enumerate(self.tiers):
            if tier.name == name:
                return index
        raise ValueError(f"no tier named {name!r}; tiers are {', '.join(t.name for t in self.tiers)}")


class InferenceRouter(ObjectModel):
    """A whole InferenceRouter object as the apiserver returns it.

    >>> router = InferenceRouter.model_validate(body)
    >>> [tier.model for tier in router.spec.tiers]
    ['llama-8b', 'llama-70b']
    """

    api_version: Literal["thrifty.dev/v1alpha1"] = "thrifty.dev/v1alpha1"
    kind: Literal["InferenceRouter"] = ROUTER_KIND
    spec: InferenceRouterSpec
    status: InferenceRouterStatus | None = None
