"""Regenerate every generated file of the chart, the plain manifests and the Argo CD patch.

    .venv/bin/python tools/chart/generate.py            # write what changed, delete what is stale
    .venv/bin/python tools/chart/generate.py --check    # write nothing; exit 1 naming stale files
    .venv/bin/python tools/chart/generate.py --kubernetes-schemas   # also tools/chart/schemas/kubernetes

What comes from where:

- charts/thrifty/values.yaml, values.schema.json  <- operator/thrifty/chart_values.py
- charts/thrifty/templates/crds/*.yaml            <- crds/*.yaml (run `thrifty crds` first)
- charts/thrifty/dashboards/*.json                <- tools/chart/chart_dashboards.py
- manifests/install/*                             <- `helm template` of the chart as generated
- manifests/argocd/argocd-cm-health.yaml          <- manifests/argocd/health.lua
- tools/chart/schemas/kubernetes/*                <- the pinned Kubernetes release's OpenAPI document
  (only with --kubernetes-schemas: it needs the Go module cache that `make testbed-build` fills)

The helm binary is the testbed's (`make testbed-build`).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from argocd_health import ARGOCD_DIR, CONFIG_MAP_PATCH, HEALTH_SCRIPT, config_map_patch
from chart_crds import CHART_CRDS_DIR, chart_crd_files
from chart_dashboards import dashboard_files
from kube_schemas import SCHEMAS_DIR, pinned_kubernetes_version, schema_files, swagger_path
from plain_manifests import CHART_DIR, INSTALL_DIR, helm_template, install_files

from thrifty.chart_values import chart_values_files
from thrifty.testbed.cluster import binary_dir

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS_DIR = CHART_DIR / "dashboards"
OWNED_DIRS = (CHART_CRDS_DIR, DASHBOARDS_DIR, INSTALL_DIR)
"""Directories that hold generated files only: anything else in them is stale."""


def helm_binary() -> Path:
    helm = binary_dir() / "helm"
    if not helm.exists():
        raise SystemExit(f"{helm} is missing: run `make testbed-build` (it builds helm from its Go module)")
    return helm


def chart_files() -> dict[Path, str]:
    files = {CHART_DIR / name: text for name, text in chart_values_files().items()}
    files |= {CHART_CRDS_DIR / name: text for name, text in chart_crd_files().items()}
    files |= {DASHBOARDS_DIR / name: text for name, text in dashboard_files().items()}
    return files


def generated_files(helm: Path) -> dict[Path, str]:
    """Every generated file with its expected content. The plain manifests are rendered from a
    copy of the chart that already holds the other generated files, so one run converges."""
    files = chart_files()
    files[ARGOCD_DIR / CONFIG_MAP_PATCH] = config_map_patch(HEALTH_SCRIPT.read_text())
    with tempfile.TemporaryDirectory() as scratch:
        chart = Path(scratch) / "thrifty"
        shutil.copytree(CHART_DIR, chart)
        for directory in (CHART_CRDS_DIR, DASHBOARDS_DIR):
            shutil.rmtree(chart / directory.relative_to(CHART_DIR), ignore_errors=True)
        for path, text in files.items():
            if path.is_relative_to(CHART_DIR):
                target = chart / path.relative_to(CHART_DIR)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
        rendered = helm_template(
            helm, chart, kube_version=pinned_kubernetes_version(), extra_args=["--skip-tests"]
        )
    files |= {INSTALL_DIR / name: text for name, text in install_files(rendered).items()}
    return files


def kubernetes_schema_files() -> dict[Path, str]:
    version = pinned_kubernetes_version()
    source = swagger_path(version)
    if not source.exists():
        raise SystemExit(
            f"{source} is missing: run `make testbed-build` (or `go mod download k8s.io/kubernetes` "
            "in testbed/gomod/kubernetes) to fetch the pinned Kubernetes module"
        )
    return {SCHEMAS_DIR / name: text for name, text in schema_files(source.read_bytes(), version).items()}


def stale_files(expected: dict[Path, str], owned_dirs: tuple[Path, ...]) -> tuple[list[Path], list[Path]]:
    """(files to write, files to delete)."""
    to_write = [path for path, text in expected.items() if not path.exists() or path.read_text() != text]
    to_delete = [
        path
        for directory in owned_dirs
        if directory.exists()
        for path in sorted(directory.iterdir())
        if path.is_file() and path not in expected
    ]
    return to_write, to_delete


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a file is stale")
    parser.add_argument(
        "--kubernetes-schemas",
        action="store_true",
        help="also the built-in kinds' JSON Schemas (needs Go's cache)",
    )
    args = parser.parse_args(argv)
    expected = generated_files(helm_binary())
    owned = OWNED_DIRS
    if args.kubernetes_schemas:
        expected |= kubernetes_schema_files()
        owned = (*owned, SCHEMAS_DIR)
    to_write, to_delete = stale_files(expected, owned)
    if args.check:
        for path in to_write + to_delete:
            print(f"stale: {path.relative_to(REPO)}", file=sys.stderr)
        if to_write or to_delete:
            print("run `.venv/bin/python tools/chart/generate.py` and commit the result", file=sys.stderr)
            return 1
        return 0
    for path in to_write:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(expected[path])
        print(f"wrote {path.relative_to(REPO)}")
    for path in to_delete:
        path.unlink()
        print(f"deleted {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
