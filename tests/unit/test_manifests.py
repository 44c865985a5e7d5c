"""manifests/: the plain install generated from the chart, its kustomization, and the Argo CD
examples and guidance."""

from __future__ import annotations

import importlib
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from support import chart_tool
from thrifty.testbed.cluster import binary_dir

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "manifests" / "install"
ARGOCD = REPO / "manifests" / "argocd"


generate = chart_tool("generate")
validate = chart_tool("validate")


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def install_objects() -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted(INSTALL.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in load_all(path)
    ]


def test_every_generated_file_is_current() -> None:
    try:
        expected = generate.generated_files(validate.tool("helm"))
    except FileNotFoundError as error:
        pytest.fail(str(error))
    to_write, to_delete = generate.stale_files(expected, generate.OWNED_DIRS)
    stale = [str(path.relative_to(REPO)) for path in to_write + to_delete]
    assert stale == [], "run `.venv/bin/python tools/chart/generate.py` and commit the result"


def test_stale_files_are_found_and_strays_marked_for_deletion(tmp_path: Path) -> None:
    (tmp_path / "kept.yaml").write_text("same\n")
    (tmp_path / "changed.yaml").write_text("old\n")
    (tmp_path / "stray.yaml").write_text("left over\n")
    expected = {
        tmp_path / "kept.yaml": "same\n",
        tmp_path / "changed.yaml": "new\n",
        tmp_path / "new.yaml": "x\n",
    }
    to_write, to_delete = generate.stale_files(expected, (tmp_path,))
    assert sorted(p.name for p in to_write) == ["changed.yaml", "new.yaml"]
    assert [p.name for p in to_delete] == ["stray.yaml"]


def test_kustomization_lists_every_file_and_nothing_else() -> None:
    kustomization = yaml.safe_load((INSTALL / "kustomization.yaml").read_text())
    files = sorted(p.name for p in INSTALL.glob("*.yaml") if p.name != "kustomization.yaml")
    assert kustomization["resources"] == files


def test_kustomize_builds_the_same_objects_as_the_files() -> None:
    kubectl = binary_dir() / "kubectl"
    if not kubectl.exists():
        pytest.fail(f"{kubectl} is missing: run `make testbed-build`")
    built = subprocess.run(
        [str(kubectl), "kustomize", str(INSTALL)], capture_output=True, text=True, check=True
    )
    key = lambda o: (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])  # noqa: E731
    assert sorted(map(key, yaml.safe_load_all(built.stdout))) == sorted(map(key, install_objects()))


def test_plain_install_has_no_helm_test_pod_and_its_own_namespace() -> None:
    objects = install_objects()
    assert "Pod" not in {o["kind"] for o in objects}
    (namespace,) = [o for o in objects if o["kind"] == "Namespace"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    namespaced = [
        o
        for o in objects
        if o["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition")
    ]
    assert {o["metadata"]["namespace"] for o in namespaced} == {namespace["metadata"]["name"]}


def test_readme_patch_path_points_at_the_router_image_variable() -> None:
    """manifests/README.md tells kustomize users to patch env/3 for the router image."""
    (deployment,) = [o for o in install_objects() if o["kind"] == "Deployment"]
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env[3]["name"] == "THRIFTY_ROUTER_IMAGE"
    assert "/spec/template/spec/containers/0/env/3/value" in (REPO / "manifests" / "README.md").read_text()


def test_argocd_applications_sync_crds_first_server_side() -> None:
    thrifty, models = load_all(ARGOCD / "application.yaml")
    assert int(thrifty["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) < int(
        models["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
    )
    assert thrifty["spec"]["source"]["path"] == "charts/thrifty"
    assert (REPO / thrifty["spec"]["source"]["path"] / "Chart.yaml").exists()
    assert "ServerSideApply=true" in thrifty["spec"]["syncPolicy"]["syncOptions"]
    assert "SkipDryRunOnMissingResource=true" in models["spec"]["syncPolicy"]["syncOptions"]
    values = thrifty["spec"]["source"]["helm"]["valuesObject"]
    chart_values = importlib.import_module("thrifty.chart_values")
    chart_values.ChartValues.model_validate(values)  # the example's values pass the chart's model


def test_argocd_example_has_no_ignore_differences() -> None:
    for application in load_all(ARGOCD / "application.yaml"):
        assert "ignoreDifferences" not in application["spec"]
