"""What every API model shares: camelCase JSON names, immutability, and CEL rules kept next to
the pydantic check that mirrors them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

CEL_KEY = "x-kubernetes-validations"


class SpecModel(BaseModel):
    """A part of a user-written spec: unknown fields are errors, so a typo never passes silently."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        frozen=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )


class ObjectModel(BaseModel):
    """A whole Kubernetes object of one of our kinds, as the apiserver returns it: typed spec and
    status, metadata kept as the raw mapping, with the accessors every caller needs."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        frozen=True,
        extra="ignore",
    )

    kind: str
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace", ""))

    @property
    def generation(self) -> int | None:
        generation = self.metadata.get("generation")
        return generation if isinstance(generation, int) else None


class StatusModel(BaseModel):
    """A part of status, written by the operator. Unknown fields are ignored rather than refused,
    so that an older operator can still read what a newer one wrote."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        frozen=True,
        extra="ignore",
        use_attribute_docstrings=True,
    )


@dataclass(frozen=True)
class CelRule:
    """One `x-kubernetes-validations` rule of the CRD, evaluated by the apiserver.

    Every rule has a pydantic twin (a model validator that calls `violation`), so the operator
    catches the same mistake in objects that reached it some other way, with the same words.
    """

    rule: str
    message: str
    field_path: str | None = None
    """Where the apiserver reports the error, relative to the object the rule sits on (`.max`)."""

    def schema(self) -> dict[str, str]:
        entry = {"rule": self.rule, "message": self.message}
        if self.field_path is not None:
            entry["fieldPath"] = self.field_path
        return entry

    def violation(self, found: str) -> ValueError:
        """The error pydantic raises: the rule's message plus the values that broke it."""
        return ValueError(f"{self.message} (found {found})")


def cel_rules(*rules: CelRule) -> dict[str, Any]:
    """`json_schema_extra` that carries CEL rules into the generated CRD schema."""
    return {CEL_KEY: [rule.schema() for rule in rules]}
