"""Kubernetes' own OpenAPI definitions -> the JSON Schemas kubeconform validates built-in kinds with.

kubeconform normally downloads these schemas; nothing may be downloaded here. They come instead
from the OpenAPI document that ships inside the Kubernetes release the testbed pins
(`k8s.io/kubernetes` in testbed/gomod/kubernetes/go.mod, `api/openapi-spec/swagger.json` in its
module, fetched and checksum-verified by Go when the testbed is built): the same definitions the
apiserver of that release serves at /openapi/v2.

Each kind becomes one self-contained file (its reachable definitions inlined under
`definitions`), in kubeconform's "standalone-strict" flavour:

- every object with declared properties refuses unknown ones (`additionalProperties: false`),
  which is what catches a misspelt or misplaced field;
- `apiVersion` and `kind` must be exactly the kind's;
- IntOrString accepts an integer or a string, Quantity a number or a string, as the apiserver does;
- Go formats (int32, byte, date-time) are left out: the validator would not check them anyway,
  and keeping them would suggest it does; descriptions are left out too (kubeconform reports
  paths, and `kubectl explain` has the prose).

Explicit nulls are refused, although the apiserver reads a null optional field as absent: a null in
a rendered manifest is a template mistake worth failing on.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
KUBERNETES_GO_MOD = REPO / "testbed" / "gomod" / "kubernetes" / "go.mod"
SCHEMAS_DIR = REPO / "tools" / "chart" / "schemas" / "kubernetes"
SOURCE_FILE = "SOURCE.json"

# Every built-in kind that the chart (with every toggle on) and manifests/ contain. kubeconform
# fails on a kind with no schema, so a new kind in a template shows up as a failing test.
KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "ConfigMap"),
    ("v1", "Namespace"),
    ("v1", "Pod"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("apps/v1", "Deployment"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
)

_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_DROPPED = {"format", "description"}


def pinned_kubernetes_version() -> str:
    """The Kubernetes release the testbed builds, e.g. `v1.37.2`."""
    match = re.search(r"^require k8s\.io/kubernetes (v\S+)$", KUBERNETES_GO_MOD.read_text(), re.MULTILINE)
    if match is None:
        raise ValueError(f"{KUBERNETES_GO_MOD}: no `require k8s.io/kubernetes vX.Y.Z` line")
    return match.group(1)


def go_module_cache() -> Path:
    if os.environ.get("GOMODCACHE"):
        return Path(os.environ["GOMODCACHE"])
    try:
        out = subprocess.run(["go", "env", "GOMODCACHE"], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return Path.home() / "go" / "pkg" / "mod"
    return Path(out.stdout.strip())


def swagger_path(version: str) -> Path:
    """Where Go keeps the pinned release's OpenAPI document once the testbed has been built."""
    return go_module_cache() / "k8s.io" / f"kubernetes@{version}" / "api" / "openapi-spec" / "swagger.json"


def schema_file_name(api_version: str, kind: str) -> str:
    """kubeconform's `{{ .ResourceKind }}{{ .KindSuffix }}.json`: `deployment-apps-v1.json`,
    `service-v1.json`, `clusterrole-rbac-v1.json` (the group's first label only)."""
    group, _, version = api_version.rpartition("/")
    suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
    return f"{kind.lower()}{suffix.lower()}.json"


def _definition_name(definitions: dict[str, Any], api_version: str, kind: str) -> str:
    group, _, version = api_version.rpartition("/")
    for name, definition in definitions.items():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            if (gvk["group"], gvk["version"], gvk["kind"]) == (group, version, kind):
                return name
    raise KeyError(f"{api_version} {kind}: not in the OpenAPI document")


def _convert(node: dict[str, Any], reached: set[str]) -> dict[str, Any]:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        reached.add(name)
        return {"$ref": f"#/definitions/{name}"}
    if node.get("format") == "int-or-string":
        return {"type": ["integer", "string"]}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in _DROPPED:
            continue
        if key == "properties":
            out[key] = {name: _convert(child, reached) for name, child in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _convert(value, reached)
        else:
            out[key] = value
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def kind_schema(definitions: dict[str, Any], api_version: str, kind: str) -> dict[str, Any]:
    """One kind's standalone-strict schema."""
    root_name = _definition_name(definitions, api_version, kind)
    converted: dict[str, dict[str, Any]] = {}
    pending = {root_name}
    while pending:
        name = pending.pop()
        reached: set[str] = set()
        converted[name] = _convert(definitions[name], reached)
        pending |= reached - converted.keys()
    if _QUANTITY in converted:
        converted[_QUANTITY] = {"type": ["number", "string"]}
    root = converted.pop(root_name)
    root["type"] = "object"
    root["properties"]["apiVersion"] = {"type": "string", "enum": [api_version]}
    root["properties"]["kind"] = {"type": "string", "enum": [kind]}
    root["required"] = sorted({*root.get("required", []), "apiVersion", "kind"})
    return {**root, "definitions": dict(sorted(converted.items()))}


def schema_files(swagger: bytes, version: str) -> dict[str, str]:
    """Every committed file of SCHEMAS_DIR, by name, from the OpenAPI document's bytes."""
    definitions: dict[str, Any] = json.loads(swagger)["definitions"]
    files = {
        schema_file_name(api_version, kind): json.dumps(
            kind_schema(definitions, api_version, kind), indent=1, sort_keys=True
        )
        + "\n"
        for api_version, kind in KINDS
    }
    source = {
        "kubernetes": version,
        "openapi": f"k8s.io/kubernetes@{version}/api/openapi-spec/swagger.json",
        "sha256": hashlib.sha256(swagger).hexdigest(),
        "generator": "tools/chart/kube_schemas.py",
    }
    files[SOURCE_FILE] = json.dumps(source, indent=2) + "\n"
    return files


def committed_source() -> dict[str, str]:
    source: dict[str, str] = json.loads((SCHEMAS_DIR / SOURCE_FILE).read_text())
    return source
