"""Offline checks of the chart and the manifests with the real tools: `helm lint`, and
`helm template` piped to `kubeconform -strict`.

    .venv/bin/python tools/chart/validate.py

kubeconform gets two local schema locations and nothing else (no download is possible here):

1. tools/chart/schemas/kubernetes/: the built-in kinds, generated from the OpenAPI document of the
   Kubernetes release the testbed pins (kube_schemas.py);
2. a scratch directory with our CRDs converted from crds/ (crd_json_schemas.py).

Kinds with no schema available offline are skipped by name, never by `-ignore-missing-schemas`:
the Prometheus Operator's PodMonitor and ServiceMonitor and Argo CD's Application, whose CRDs
are not part of this repository. Any other kind without a schema fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from crd_json_schemas import write_crd_schemas
from kube_schemas import SCHEMAS_DIR, pinned_kubernetes_version
from plain_manifests import CHART_DIR, helm_template

from thrifty.testbed.cluster import binary_dir

REPO = Path(__file__).resolve().parents[2]
CRDS_DIR = REPO / "crds"
SKIPPED_KINDS = (
    "monitoring.coreos.com/v1/PodMonitor",
    "monitoring.coreos.com/v1/ServiceMonitor",
    "argoproj.io/v1alpha1/Application",
)
"""Kinds whose CRDs are not in this repository; their fields are checked by the unit tests."""

ALL_TOGGLES_ON = (
    "monitoring.serviceMonitor.enabled=true",
    "monitoring.podMonitor.enabled=true",
    "operator.watchNamespaces={models,team-*}",
    "operator.verbose=true",
    "imagePullSecrets[0].name=registry",
    "router.image.digest=sha256:" + "1" * 64,
)
"""Values that render every optional object and branch of the chart."""


def tool(name: str) -> Path:
    """A binary the testbed builds from its Go module (helm, kubeconform)."""
    path = binary_dir() / name
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: run `make testbed-build` (it builds {name} from its Go module)"
        )
    return path


def helm_lint(
    chart_dir: Path = CHART_DIR, set_values: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    command = [
        str(tool("helm")),
        "lint",
        str(chart_dir),
        "--strict",
        "--kube-version",
        pinned_kubernetes_version(),
    ]
    for value in set_values:
        command += ["--set", value]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def render(set_values: Sequence[str] = (), chart_dir: Path = CHART_DIR) -> str:
    args: list[str] = []
    for value in set_values:
        args += ["--set", value]
    return helm_template(tool("helm"), chart_dir, kube_version=pinned_kubernetes_version(), extra_args=args)


@dataclass(frozen=True)
class Verdict:
    """kubeconform's word on one object."""

    source: str
    kind: str
    name: str
    status: str
    """valid, invalid, error (e.g. no schema) or skipped."""
    message: str


def kubeconform(
    *, stdin: str | None = None, paths: Sequence[Path] = (), crds_dir: Path = CRDS_DIR
) -> list[Verdict]:
    """Every object in `stdin` or `paths`, validated strictly against the local schemas."""
    with tempfile.TemporaryDirectory() as scratch:
        write_crd_schemas(crds_dir, Path(scratch))
        command = [
            str(tool("kubeconform")),
            "-strict",
            "-verbose",
            "-output",
            "json",
            "-schema-location",
            str(SCHEMAS_DIR / "{{ .ResourceKind }}{{ .KindSuffix }}.json"),
            "-schema-location",
            str(Path(scratch) / "{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"),
            "-skip",
            ",".join(SKIPPED_KINDS),
            *(str(path) for path in paths),
        ]
        if stdin is not None:
            command.append("-")
        result = subprocess.run(command, input=stdin, capture_output=True, text=True, check=False)
    if not result.stdout.strip():
        raise RuntimeError(f"kubeconform gave no report: {result.stderr}")
    report = json.loads(result.stdout)
    return [
        Verdict(
            source=item.get("filename", ""),
            kind=item.get("kind", ""),
            name=item.get("name", ""),
            status=item["status"].removeprefix("status").lower(),
            message=item.get("msg", ""),
        )
        for item in report["resources"]
    ]


def main() -> int:
    failures = 0
    for values in ((), ALL_TOGGLES_ON):
        lint = helm_lint(set_values=values)
        print(lint.stdout.strip())
        failures += lint.returncode != 0
        for verdict in kubeconform(stdin=render(values)):
            print(f"{verdict.status:8} {verdict.kind} {verdict.name} {verdict.message}".rstrip())
            failures += verdict.status not in ("valid", "skipped")
    files = sorted((REPO / "examples").glob("*.yaml")) + sorted((REPO / "manifests").glob("*/**/*.yaml"))
    for verdict in kubeconform(
        paths=[f for f in files if f.name not in ("kustomization.yaml", "health_test.yaml")]
    ):
        print(f"{verdict.status:8} {verdict.source} {verdict.kind} {verdict.name} {verdict.message}".rstrip())
        failures += verdict.status not in ("valid", "skipped")
    print("all valid" if not failures else f"{failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
