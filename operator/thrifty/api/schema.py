"""Pydantic JSON Schema (draft 2020-12) -> a Kubernetes structural OpenAPI v3 schema.

Kubernetes wants every node typed, no `$ref`, no `anyOf`/`oneOf` except the int-or-string form, no
`additionalProperties: false` (unknown fields are pruned, or refused under strict field
validation), and boolean `exclusiveMinimum`. Optional fields are simply not `required`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from thrifty.api.base import CEL_KEY
from thrifty.api.inference_model import CATEGORIES, GROUP, VERSION

_DROPPED_KEYS = {"title", "$defs", "additionalProperties", "propertyNames", "patternProperties"}


def structural_schema(model: type[BaseModel], path: str) -> dict[str, Any]:
    """The structural schema of `model`, placed at `path` (e.g. "spec") of the object, with field
    docs as descriptions and CEL rules kept."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    definitions: dict[str, Any] = raw.get("$defs", {})
    return _convert(raw, definitions, path)


def _convert(node: dict[str, Any], definitions: dict[str, Any], path: str) -> dict[str, Any]:
    node = _inline_ref(node, definitions)
    node = _drop_null_branch(node, definitions)
    if _is_int_or_string(node):
        return _int_or_string(node)
    if "const" in node:
        node = {**node, "enum": [node["const"]]}
        del node["const"]

    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS or key in (
            "properties",
            "items",
            "default",
            "exclusiveMinimum",
            "exclusiveMaximum",
        ):
            continue
        out[key] = _prose(value) if key == "description" else value

    for bound, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in node:
            out[inclusive] = node[bound]
            out[bound] = True

    if "properties" in node:
        out["type"] = "object"
        out["properties"] = {
            name: _convert(prop, definitions, f"{path}.{name}") for name, prop in node["properties"].items()
        }
        if not out.get("required"):
            out.pop("required", None)
    elif node.get("type") == "object":
        _convert_map(node, out, definitions, path)
    if "items" in node:
        out["items"] = _convert(node["items"], definitions, f"{path}[]")

    default = _clean_default(node.get("default"))
    if default is not None:
        out["default"] = default
    return _ordered(out)


def _convert_map(node: dict[str, Any], out: dict[str, Any], definitions: dict[str, Any], path: str) -> None:
    """`dict[K, V]`: pydantic writes a constrained key type as patternProperties (or propertyNames).
    Structural schemas have neither, so values go to additionalProperties and CEL checks the keys."""
    key_pattern = node.get("propertyNames", {}).get("pattern")
    values = node.get("additionalProperties")
    if "patternProperties" in node:
        ((key_pattern, values),) = node["patternProperties"].items()
    if isinstance(values, dict):
        out["additionalProperties"] = _convert(values, definitions, f"{path}[]")
    if key_pattern is not None:
        key_rule = {
            "rule": f"self.all(key, key.matches('{key_pattern}'))",
            "message": f"every key of {path} must match {key_pattern}",
        }
        out[CEL_KEY] = [*out.get(CEL_KEY, []), key_rule]


def _prose(text: str) -> str:
    """A docstring as `kubectl explain` should show it: wrapped lines joined, paragraphs and
    list items kept."""
    paragraphs = []
    for paragraph in text.strip().split("\n\n"):
        items: list[str] = []
        for line in paragraph.splitlines():
            stripped = line.strip()
            if stripped.startswith("- ") or not items:
                items.append(stripped)
            else:
                items[-1] += " " + stripped
        paragraphs.append("\n".join(items))
    return "\n\n".join(paragraphs)


def _inline_ref(node: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    target = definitions[ref.rsplit("/", 1)[-1]]
    # Keys next to $ref (the field's own description, default, constraints) win over the
    # referenced model's: a field docstring says more about its place than the class docstring.
    merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return _inline_ref(merged, definitions)


def _drop_null_branch(node: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    branches = node.get("anyOf")
    if branches is None:
        return node
    kept = [b for b in branches if b.get("type") != "null"]
    if len(kept) == len(branches) or len(kept) != 1:
        if len(kept) != len(branches):
            node = {**node, "anyOf": kept}
        return node
    merged = {**_inline_ref(kept[0], definitions), **{k: v for k, v in node.items() if k != "anyOf"}}
    return _drop_null_branch(merged, definitions)


def _is_int_or_string(node: dict[str, Any]) -> bool:
    branches = node.get("anyOf")
    return branches is not None and sorted(b.get("type", "") for b in branches) == ["integer", "string"]


def _int_or_string(node: dict[str, Any]) -> dict[str, Any]:
    string_branch = next(b for b in node["anyOf"] if b.get("type") == "string")
    out: dict[str, Any] = {}
    if "description" in node:
        out["description"] = node["description"]
    out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "pattern" in string_branch:
        out["pattern"] = string_branch["pattern"]
    out["x-kubernetes-int-or-string"] = True
    return out


def _clean_default(value: Any) -> Any:
    """A default without nulls, empty strings and empty containers: the apiserver would write those
    into every object, and absent already means the same thing."""
    if value == "":
        return None
    if isinstance(value, dict):
        cleaned = {k: _clean_default(v) for k, v in value.items()}
        cleaned = {k: v for k, v in cleaned.items() if v is not None}
        return cleaned or None
    if isinstance(value, list):
        return value or None
    return value


_KEY_ORDER = ("description", "type", "format", "enum", "default")


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    """Description and type first, then the rest in a fixed order, so the YAML reads well and never
    changes by accident."""
    head = {k: node[k] for k in _KEY_ORDER if k in node}
    tail = {k: node[k] for k in sorted(node) if k not in head}
    return {**head, **tail}


def crd_object(
    *,
    kind: str,
    plural: str,
    singular: str,
    short_names: tuple[str, ...],
    description: str,
    spec_model: type[BaseModel],
    status_model: type[BaseModel],
    subresources: dict[str, Any],
    printer_columns: list[dict[str, Any]],
) -> dict[str, Any]:
    """The CustomResourceDefinition of one of our kinds: namespaced, in GROUP/VERSION, its schema
    made from the spec and status models."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": list(short_names),
                "categories": list(CATEGORIES),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "description": description,
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": structural_schema(spec_model, "spec"),
                                "status": structural_schema(status_model, "status"),
                            },
                        }
                    },
                    "subresources": subresources,
                    "additionalPrinterColumns": printer_columns,
                }
            ],
        },
    }
