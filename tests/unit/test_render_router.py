"""The router's children: pinned by a golden file, plus what a platform engineer relies on."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from thrifty.api import InferenceModel, InferenceRouter, RouterConfig
from thrifty.render import desired_router_children, model_backend, router_config

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden" / "router-assistant.yaml"
ROUTER_EXAMPLE = REPO / "examples" / "routers" / "assistant.yaml"


def load_router(**spec_changes: Any) -> InferenceRouter:
    body = yaml.safe_load(ROUTER_EXAMPLE.read_text())
    body["metadata"].update(uid="00000000-0000-0000-0000-00000000000a", generation=3)
    body["spec"].update(spec_changes)
    return InferenceRouter.model_validate(body)


def load_model(name: str, *, effective: int | None = None) -> InferenceModel:
    body = yaml.safe_load((REPO / "examples" / name).read_text())
    if effective is not None:
        body["status"] = {"maxNumSeqs": {"engine": 256, "effective": effective}}
    return InferenceModel.model_validate(body)


def backends(effective_8b: int | None = None) -> dict[str, Any]:
    return {
        "llama-8b": model_backend(load_model("llama-3.1-8b-fp8-h100.yaml", effective=effective_8b)),
        "llama-70b": model_backend(load_model("llama-3.1-70b-awq-draft-4xh100.yaml")),
    }


def children(router: InferenceRouter | None = None, **kwargs: Any) -> dict[str, dict[str, Any]]:
    router = router or load_router()
    rendered = desired_router_children(router, router_config(router, backends()), **kwargs)
    return {child["kind"]: child for child in rendered}


def test_children_match_the_golden_file() -> None:
    router = load_router()
    rendered = yaml.safe_dump_all(
        desired_router_children(router, router_config(router, backends())), sort_keys=False
    )
    if os.environ.get("THRIFTY_UPDATE_GOLDEN"):
        GOLDEN.write_text(rendered)
    assert GOLDEN.exists(), f"{GOLDEN} is missing: run THRIFTY_UPDATE_GOLDEN=1 pytest {__file__}"
    assert rendered == GOLDEN.read_text(), (
        f"rendering changed: review, then THRIFTY_UPDATE_GOLDEN=1 pytest {__file__}"
    )


def test_children_come_in_apply_order_and_are_owned_by_the_router() -> None:
    router = load_router()
    rendered = desired_router_children(router, router_config(router, backends()))
    assert [c["kind"] for c in rendered] == [
        "ServiceAccount",
        "RoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
    ]
    for child in rendered:
        (owner,) = child["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("InferenceRouter", "assistant", True)
        assert child["metadata"]["namespace"] == "models"
        assert child["metadata"]["labels"]["thrifty.dev/router"] == "assistant"


def test_config_map_holds_a_router_config_the_router_accepts() -> None:
    config_map = children()["ConfigMap"]
    config = RouterConfig.model_validate_json(config_map["data"]["router.json"])
    assert (config.name, config.namespace, config.generation) == ("assistant", "models", 3)
    assert config.models["llama-8b"].service == "llama-8b"
    assert config.models["llama-70b"].served_name == "llama-3.1-70b"
    assert [tier.name for tier in config.spec.tiers] == ["small", "large"]


def test_the_control_loops_effective_cap_reaches_the_router() -> None:
    router = load_router()
    config = router_config(router, backends(effective_8b=48))
    assert config.models["llama-8b"].max_in_flight_per_replica == 48
    assert config.cap(0) == 48
    # Without a published cap, the engine's own batch limit.
    assert config.models["llama-70b"].max_in_flight_per_replica == 128


def test_router_pods_run_the_router_with_its_config_and_account() -> None:
    rendered = children(image="registry.example/thrifty@sha256:" + "1" * 64, cluster_role="custom-router")
    pod = rendered["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "registry.example/thrifty@sha256:" + "1" * 64
    assert container["command"] + container["args"] == [
        "thrifty",
        "router",
        "--config",
        "/etc/thrifty/router/router.json",
        "--port",
        "8000",
    ]
    assert {"name": "config", "configMap": {"name": "assistant-router"}} in pod["volumes"]
    assert pod["serviceAccountName"] == "assistant-router"
    assert rendered["RoleBinding"]["roleRef"]["name"] == "custom-router"
    assert rendered["RoleBinding"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "assistant-router", "namespace": "models"}
    ]
    assert (
        rendered["Service"]["spec"]["selector"] == rendered["Deployment"]["spec"]["selector"]["matchLabels"]
    )
    # Router pods go on ordinary nodes: no GPU request, no GPU toleration.
    assert "nvidia.com/gpu" not in json.dumps(pod)


def test_router_pods_meet_the_restricted_pod_security_standard() -> None:
    pod = children()["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = pod["containers"][0]["securityContext"]
    assert security == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def test_a_classifier_is_mounted_and_named_in_the_config() -> None:
    router = load_router(selection={"classifier": {"configMap": {"name": "tiers", "key": "model.json"}}})
    rendered = {c["kind"]: c for c in desired_router_children(router, router_config(router, backends()))}
    pod = rendered["Deployment"]["spec"]["template"]["spec"]
    assert {"name": "classifier", "configMap": {"name": "tiers"}} in pod["volumes"]
    assert {"name": "classifier", "mountPath": "/etc/thrifty/classifier", "readOnly": True} in pod[
        "containers"
    ][0]["volumeMounts"]
    config = RouterConfig.model_validate_json(rendered["ConfigMap"]["data"]["router.json"])
    assert config.classifier_path == "/etc/thrifty/classifier/model.json"


def test_a_missing_backend_is_refused_by_name() -> None:
    router = load_router()
    with pytest.raises(ValueError, match="llama-70b"):
        router_config(router, {"llama-8b": backends()["llama-8b"]})
