"""crds/*.yaml -> charts/thrifty/templates/crds/*.yaml: the same CRDs as chart templates.

Templates rather than the chart's crds/ directory, because Helm installs that directory once
and never upgrades it; a template is upgraded with the release. The copy adds the chart's
labels and three annotations:

- `helm.sh/resource-policy: keep` (values `crds.keep`): `helm uninstall` leaves the CRD, so the
  users' InferenceModels and InferenceRouters are not deleted with it;
- `argocd.argoproj.io/sync-wave: "-1"`: Argo CD creates the CRDs before anything that uses them;
- `argocd.argoproj.io/sync-options: ServerSideApply=true`: no last-applied annotation holding a
  copy of the whole schema.

Everything below `metadata` is copied byte for byte, so the chart cannot drift from crds/.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CRDS_DIR = REPO / "crds"
CHART_CRDS_DIR = REPO / "charts" / "thrifty" / "templates" / "crds"

_CHART_METADATA = """\
metadata:
  name: {name}
  labels:
    {{{{- include "thrifty.labels" . | nindent 4 }}}}
  annotations:
    {{{{- if .Values.crds.keep }}}}
    # helm uninstall must not delete the CRD: that would delete every object of its kind.
    helm.sh/resource-policy: keep
    {{{{- end }}}}
    argocd.argoproj.io/sync-wave: "-1"
    argocd.argoproj.io/sync-options: ServerSideApply=true
spec:
"""


def chart_crd_template(source_name: str, text: str) -> str:
    """The chart template for one generated CRD file."""
    lines = text.splitlines(keepends=True)
    start = lines.index("metadata:\n")
    if not lines[start + 1].startswith("  name: ") or lines[start + 2] != "spec:\n":
        raise ValueError(f"crds/{source_name}: expected `metadata:` with only `name:` before `spec:`")
    name = lines[start + 1].removeprefix("  name: ").strip()
    head = [line for line in lines[:start] if not line.startswith("#")]
    # Descriptions are plain text to Helm's template engine: any `{{` in them must stay literal.
    body = "".join(lines[start + 3 :]).replace("{{", '{{ "{{" }}')
    return (
        "{{- if .Values.crds.install }}\n"
        f"# Copied from crds/{source_name} by tools/chart/generate.py. Do not edit: regenerate.\n"
        + "".join(head)
        + _CHART_METADATA.format(name=name)
        + body
        + "{{- end }}\n"
    )


def chart_crd_files(crds_dir: Path = CRDS_DIR) -> dict[str, str]:
    """Every chart CRD template, by file name, from the CRD files in `crds_dir`."""
    return {
        path.name: chart_crd_template(path.name, path.read_text()) for path in sorted(crds_dir.glob("*.yaml"))
    }
