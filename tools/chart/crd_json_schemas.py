"""Our CRDs (crds/*.yaml) -> the JSON Schemas kubeconform validates InferenceModels and
InferenceRouters with, one file per kind and version at `GROUP/KIND_VERSION.json`
(kubeconform's `{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json`).

A CRD's schema is OpenAPI v3.0 with Kubernetes extensions; kubeconform wants JSON Schema. The
differences that matter:

- strictness: an object with declared properties refuses others, unless it says
  `x-kubernetes-preserve-unknown-fields` (the apiserver would prune or, under strict field
  validation, refuse them);
- `nullable: true` admits null; `x-kubernetes-int-or-string` admits both types;
- kubeconform compiles schemas without `$schema` as JSON Schema draft 4, whose boolean
  `exclusiveMinimum`/`exclusiveMaximum` are OpenAPI 3.0's own: they carry over unchanged;
- CEL rules (`x-kubernetes-validations`) cannot be expressed: only the apiserver checks them,
  which the integration tests exercise. `metadata` stays open, as the apiserver validates it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


def _convert(node: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key == "properties":
            out[key] = {name: _convert(child) for name, child in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _convert(value)
        elif key in ("anyOf", "oneOf", "allOf"):
            out[key] = [_convert(branch) for branch in value]
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("anyOf", None)
        out["type"] = ["integer", "string"]
    if node.get("nullable") and "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*types, "null"]
    open_object = node.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in node
    if "properties" in node and not open_object:
        out["additionalProperties"] = False
    return out


def crd_schemas(crd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`{"GROUP/KIND_VERSION.json": schema}` for every served version of one CRD."""
    group = crd["spec"]["group"]
    kind = crd["spec"]["names"]["kind"]
    schemas = {}
    for version in crd["spec"]["versions"]:
        if not version.get("served", True):
            continue
        schema = _convert(version["schema"]["openAPIV3Schema"])
        properties = schema.setdefault("properties", {})
        properties["apiVersion"] = {"type": "string", "enum": [f"{group}/{version['name']}"]}
        properties["kind"] = {"type": "string", "enum": [kind]}
        properties["metadata"] = {"type": "object"}
        schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind"})
        schemas[f"{group}/{kind.lower()}_{version['name']}.json"] = schema
    return schemas


def write_crd_schemas(crds_dir: Path, out_dir: Path) -> list[Path]:
    """Convert every CRD in `crds_dir` into `out_dir`; returns the files written."""
    written = []
    for path in sorted(crds_dir.glob("*.yaml")):
        for name, schema in crd_schemas(yaml.safe_load(path.read_text())).items():
            target = out_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
            written.append(target)
    return written
