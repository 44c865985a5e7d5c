"""The Argo CD health check of InferenceModel and InferenceRouter, run under a real Lua 5.1 (the
language of Argo CD's gopher-lua) on every case in manifests/argocd/health_test."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from support import chart_tool

REPO = Path(__file__).resolve().parents[2]


health = chart_tool("argocd_health")
SCRIPT = health.HEALTH_SCRIPT.read_text()
CASES = [(kind, path, expected) for kind in health.KINDS for path, expected in health.health_cases(kind)]


@pytest.fixture(scope="module", autouse=True)
def lua_interpreter() -> None:
    if shutil.which(health.LUA) is None:
        pytest.fail(f"{health.LUA} is not installed: `apt-get install -y lua5.1` (make deps)")


@pytest.mark.parametrize(("kind", "path", "expected"), CASES, ids=[f"{k}/{p.stem}" for k, p, _ in CASES])
def test_health_case(kind: str, path: Path, expected: dict[str, str]) -> None:
    obj = health.load_object(path)
    assert obj["kind"] == kind
    assert health.evaluate(SCRIPT, obj) == expected


def test_every_health_status_is_covered_for_models() -> None:
    statuses = {expected["status"] for kind, _, expected in CASES if kind == "InferenceModel"}
    assert statuses == {"Healthy", "Progressing", "Degraded"}


def test_every_testdata_file_is_a_case() -> None:
    for kind in health.KINDS:
        listed = {path.name for path, _ in health.health_cases(kind)}
        present = {p.name for p in (health.HEALTH_TESTS / kind / "testdata").glob("*.yaml")}
        assert listed == present, kind


def healthy_model(**status: Any) -> dict[str, Any]:
    obj = health.load_object(health.HEALTH_TESTS / "InferenceModel" / "testdata" / "healthy.yaml")
    obj["status"].update(status)
    return obj


def test_degraded_wins_over_ready_because_the_spec_is_not_carried_out() -> None:
    obj = healthy_model()
    degraded = next(c for c in obj["status"]["conditions"] if c["type"] == "Degraded")
    degraded.update(
        status="True", reason="InvalidEngineArgs", message="spec.engine.extraArgs: unknown flag --foo"
    )
    assert health.evaluate(SCRIPT, obj) == {
        "status": "Degraded",
        "message": "spec.engine.extraArgs: unknown flag --foo",
    }


def test_a_degraded_condition_without_message_reports_its_reason() -> None:
    obj = healthy_model()
    degraded = next(c for c in obj["status"]["conditions"] if c["type"] == "Degraded")
    degraded.update(status="True", reason="InvalidSpec", message="")
    assert health.evaluate(SCRIPT, obj) == {"status": "Degraded", "message": "InvalidSpec"}


def test_messages_with_quotes_and_non_ascii_survive_the_lua_round_trip() -> None:
    obj = healthy_model()
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    ready["message"] = 'say "hi" \\ 2/2 ready — ok\nnext line'
    assert health.evaluate(SCRIPT, obj)["message"] == ready["message"]


def test_lua_literal_of_nested_values() -> None:
    literal = health.lua_literal({"a": [1, 2.5, True], "b": None, "c": {"d": "x"}})
    assert literal == '{["a"] = {1, 2.5, true}, ["c"] = {["d"] = "x"}}'


def test_config_map_patch_installs_the_script_for_both_kinds() -> None:
    committed = (health.ARGOCD_DIR / health.CONFIG_MAP_PATCH).read_text()
    assert committed == health.config_map_patch(SCRIPT), "run tools/chart/generate.py"
    patch = yaml.safe_load(committed)
    assert patch["metadata"] == {
        "name": "argocd-cm",
        "namespace": "argocd",
        "labels": {"app.kubernetes.io/name": "argocd-cm", "app.kubernetes.io/part-of": "argocd"},
    }
    assert patch["data"] == {
        "resource.customizations.health.thrifty.dev_InferenceModel": SCRIPT,
        "resource.customizations.health.thrifty.dev_InferenceRouter": SCRIPT,
    }


def test_the_script_is_lua_5_1_without_later_syntax() -> None:
    # goto, integer division and bitwise operators arrived in Lua 5.2/5.3; gopher-lua has none.
    code = "\n".join(line.split("--", 1)[0] for line in SCRIPT.splitlines())
    for later in ("goto ", "//", "&", "|", "~ ", "<<", ">>"):
        assert later not in code, later
