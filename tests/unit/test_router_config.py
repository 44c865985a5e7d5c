"""The router's configuration file: validation with field paths, caps, and live reload."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from thrifty.api import DEFAULT_MAX_IN_FLIGHT_PER_REPLICA
from thrifty.router.app import Router
from thrifty.router.config import ConfigError, load_config, parse_config
from thrifty.router.main import parse_endpoints, watch_config

CONFIG: dict[str, Any] = {
    "name": "assistant",
    "namespace": "models",
    "generation": 2,
    "spec": {
        "tiers": [
            {"name": "small", "model": "llama-8b"},
            {"name": "large", "model": "llama-70b", "costWeight": 12},
        ]
    },
    "models": {
        "llama-8b": {"service": "llama-8b", "servedName": "llama-8b-instruct", "maxInFlightPerReplica": 96},
        "llama-70b": {"service": "llama-70b", "servedName": "llama-70b"},
    },
}


def with_changes(**changes: Any) -> dict[str, Any]:
    config = copy.deepcopy(CONFIG)
    config.update(changes)
    return config


def test_a_rendered_config_parses() -> None:
    config = parse_config(json.dumps(CONFIG))

    assert config.backend(0).served_name == "llama-8b-instruct"
    assert config.backend(1).port == 8000
    assert config.generation == 2


def test_cap_is_the_lower_of_spec_and_control_loop_else_the_default() -> None:
    config = parse_config(json.dumps(CONFIG))
    capped = copy.deepcopy(CONFIG)
    capped["spec"]["admission"] = {"maxInFlightPerReplica": 64}

    assert (config.cap(0), config.cap(1)) == (96, DEFAULT_MAX_IN_FLIGHT_PER_REPLICA)
    assert [parse_config(json.dumps(capped)).cap(tier) for tier in (0, 1)] == [64, 64]


@pytest.mark.parametrize(
    ("config", "phrase"),
    [
        (with_changes(models={"llama-8b": CONFIG["models"]["llama-8b"]}), "models: no entry for llama-70b"),
        (
            with_changes(spec={**CONFIG["spec"], "selection": {"classifier": {"configMap": {"name": "c"}}}}),
            "classifierPath: required",
        ),
        (
            with_changes(
                spec={"tiers": [{"name": "small", "model": "llama-8b"}], "affinity": {"key": "Header"}}
            ),
            "spec.affinity",
        ),
        (
            with_changes(models={**CONFIG["models"], "llama-8b": {"service": "llama-8b"}}),
            "models.llama-8b.servedName",
        ),
    ],
)
def test_invalid_configs_name_the_field(config: dict[str, Any], phrase: str) -> None:
    with pytest.raises(ConfigError, match=phrase.replace("[", r"\[")):
        parse_config(json.dumps(config))


def test_unreadable_or_non_json_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="not JSON"):
        load_config(tmp_path / "bad.json")


def test_static_endpoints_flag() -> None:
    assert parse_endpoints(["a=10.0.0.2:8000,10.0.0.1:8000", "b=h:1"]) == {
        "a": ("10.0.0.1:8000", "10.0.0.2:8000"),
        "b": ("h:1",),
    }
    with pytest.raises(ValueError, match="SERVICE=HOST:PORT"):
        parse_endpoints(["10.0.0.1:8000"])


def test_changed_file_is_reloaded_and_an_invalid_one_keeps_the_last_good(tmp_path: Path) -> None:
    path = tmp_path / "router.json"
    path.write_text(json.dumps(CONFIG))

    async def scenario() -> tuple[int, int, float]:
        router = Router(load_config(path), None)
        task = asyncio.create_task(watch_config(router, path, 0.02))
        try:
            changed = copy.deepcopy(CONFIG)
            changed["models"]["llama-8b"]["maxInFlightPerReplica"] = 12
            path.write_text(json.dumps(changed))
            await asyncio.sleep(0.2)
            reloaded_cap = router.tiers[0].state.cap
            path.write_text("{ not json")
            await asyncio.sleep(0.2)
            kept_cap = router.tiers[0].state.cap
            invalid = router.metrics.registry.get_sample_value(
                "thrifty_router_config_reloads_total", {"result": "invalid"}
            )
        finally:
            task.cancel()
        return reloaded_cap, kept_cap, invalid or 0.0

    assert asyncio.run(scenario()) == (12, 12, 1.0)


def test_reload_keeps_a_tiers_replicas_and_cache_picture(tmp_path: Path) -> None:
    router = Router(parse_config(json.dumps(CONFIG)), None)
    router.apply_endpoints({"llama-8b": ("10.244.0.5:8000",), "llama-70b": ("10.244.0.6:8000",)})
    state = router.tiers[0].state
    state.index.record("10.244.0.5:8000", [1, 2, 3])

    renamed = copy.deepcopy(CONFIG)
    renamed["spec"]["tiers"][0]["name"] = "cheap"
    router.apply_config(parse_config(json.dumps(renamed)), None)

    assert router.tiers[0].state is state
    assert router.tiers[0].name == "cheap"
    assert state.index.match([1, 2, 3]) == {"10.244.0.5:8000": 3}
