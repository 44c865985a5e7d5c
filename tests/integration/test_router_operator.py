"""The operator turns an InferenceRouter into its router's children on the real apiserver, keeps
router.json in step with its models, and refuses what it cannot carry out without touching what
runs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from conftest import OperatorProcess
from support import condition, eventually, kubectl, load_example, scratch_namespace
from thrifty.api import RouterConfig
from thrifty.testbed.cluster import Testbed

REPO = Path(__file__).resolve().parents[2]
SMALL = "llama-3.1-8b-fp8-h100.yaml"
LARGE = "llama-3.1-70b-awq-draft-4xh100.yaml"
ROUTER = REPO / "examples" / "routers" / "assistant.yaml"


@pytest.fixture
def namespace(testbed: Testbed, core: Any) -> Iterator[str]:
    with scratch_namespace(core, "models", hf_token="hf_test") as name:
        yield name


def apply(testbed: Testbed, body: dict[str, Any]) -> None:
    kubectl(testbed, "apply", "-f", "-", stdin=yaml.safe_dump(body))


def read_router(api_client: Any, namespace: str, name: str = "assistant") -> dict[str, Any]:
    body: dict[str, Any] = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
        "thrifty.dev", "v1alpha1", namespace, "inferencerouters", name
    )
    return body


def router_config(core: Any, namespace: str) -> RouterConfig | None:
    try:
        config_map = core.read_namespaced_config_map("assistant-router", namespace)
    except client.exceptions.ApiException as error:
        if error.status == 404:
            return None
        raise
    return RouterConfig.model_validate_json(config_map.data["router.json"])


def degraded_reason(api_client: Any, namespace: str, name: str = "assistant") -> str | None:
    found = condition(read_router(api_client, namespace, name), "Degraded")
    return found["reason"] if found and found["status"] == "True" else None


def test_router_gets_its_children_and_reports_each_tiers_endpoints(
    testbed: Testbed, operator: OperatorProcess, api_client: Any, core: Any, apps: Any, namespace: str
) -> None:
    small = load_example(REPO / "examples" / SMALL, namespace)
    del small["spec"]["scaling"]  # the spec's maxNumSeqs then is the engine flag, not a starting point
    apply(testbed, small)
    apply(testbed, load_example(REPO / "examples" / LARGE, namespace))
    apply(testbed, load_example(ROUTER, namespace))

    eventually(
        lambda: _exists(core.read_namespaced_service, namespace, "assistant"), timeout=15, what="children"
    )
    config = router_config(core, namespace)
    assert config is not None
    assert (config.name, config.namespace) == ("assistant", namespace)
    assert config.models["llama-8b"].served_name == "llama-3.1-8b"
    assert config.models["llama-70b"].served_name == "llama-3.1-70b"
    deployment = apps.read_namespaced_deployment("assistant", namespace)
    assert deployment.spec.template.spec.service_account_name == "assistant-router"
    assert deployment.metadata.owner_references[0].kind == "InferenceRouter"
    assert core.read_namespaced_service("assistant", namespace).spec.ports[0].port == 8000
    binding = client.RbacAuthorizationV1Api(api_client).read_namespaced_role_binding(
        "assistant-router", namespace
    )
    assert binding.role_ref.name == "thrifty-router"
    assert core.read_namespaced_service_account("assistant-router", namespace).metadata.owner_references

    def tiers_with_endpoints() -> list[dict[str, Any]] | None:
        tiers = (read_router(api_client, namespace).get("status") or {}).get("tiers") or []
        return tiers if len(tiers) == 2 and all(t.get("readyEndpoints") == 1 for t in tiers) else None

    tiers = eventually(tiers_with_endpoints, timeout=60, what="one ready endpoint in each tier")
    assert [(t["name"], t["model"]) for t in tiers] == [("small", "llama-8b"), ("large", "llama-70b")]
    assert (
        read_router(api_client, namespace)["status"]["endpoint"]
        == f"http://assistant.{namespace}.svc:8000/v1"
    )
    out = kubectl(testbed, "get", "ir", "-n", namespace)
    assert "assistant" in out

    # A model's cap reaches router.json without restarting the router (no change to its pods).
    template = apps.read_namespaced_deployment("assistant", namespace).spec.template.to_dict()
    kubectl(
        testbed,
        "patch",
        "im",
        "llama-8b",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"batching":{"maxNumSeqs":48}}}',
    )
    eventually(
        lambda: (c := router_config(core, namespace)) is not None and c.cap(0) == 48,
        timeout=60,
        what="the new maxNumSeqs in router.json",
    )
    assert apps.read_namespaced_deployment("assistant", namespace).spec.template.to_dict() == template


def test_a_tier_naming_a_missing_model_degrades_and_leaves_the_running_router_as_it_is(
    testbed: Testbed, operator: OperatorProcess, api_client: Any, core: Any, apps: Any, namespace: str
) -> None:
    body = load_example(ROUTER, namespace)
    apply(testbed, body)
    eventually(lambda: degraded_reason(api_client, namespace) == "ModelNotFound", what="ModelNotFound")
    message = condition(read_router(api_client, namespace), "Degraded")["message"]  # type: ignore[index]
    assert "spec.tiers[0].model" in message
    assert "llama-8b" in message
    assert router_config(core, namespace) is None, "nothing is applied for a router that cannot run"

    for example in (SMALL, LARGE):
        apply(testbed, load_example(REPO / "examples" / example, namespace))
    eventually(lambda: degraded_reason(api_client, namespace) is None, timeout=30, what="the router to heal")
    config_version = core.read_namespaced_config_map("assistant-router", namespace).metadata.resource_version
    # The Deployment's status moves as its pod turns Ready; its spec must not.
    deployment_generation = apps.read_namespaced_deployment("assistant", namespace).metadata.generation

    body["spec"]["tiers"][1]["model"] = "llama-405b"
    apply(testbed, body)
    eventually(
        lambda: degraded_reason(api_client, namespace) == "ModelNotFound", what="ModelNotFound after an edit"
    )
    events = kubectl(
        testbed, "get", "events", "-n", namespace, "--field-selector", "involvedObject.name=assistant"
    )
    assert "llama-405b" in events
    assert (
        core.read_namespaced_config_map("assistant-router", namespace).metadata.resource_version
        == config_version
    )
    assert (
        apps.read_namespaced_deployment("assistant", namespace).metadata.generation == deployment_generation
    )


def test_a_router_never_takes_over_a_models_deployment(
    testbed: Testbed, operator: OperatorProcess, api_client: Any, apps: Any, namespace: str
) -> None:
    apply(testbed, load_example(REPO / "examples" / SMALL, namespace))
    eventually(
        lambda: _exists(apps.read_namespaced_deployment, namespace, "llama-8b"), what="the model's Deployment"
    )
    before = apps.read_namespaced_deployment("llama-8b", namespace)
    router = load_example(ROUTER, namespace)
    router["metadata"]["name"] = "llama-8b"
    router["spec"]["tiers"] = [{"name": "small", "model": "llama-8b"}]
    router["spec"]["selection"] = {}
    apply(testbed, router)
    eventually(
        lambda: degraded_reason(api_client, namespace, "llama-8b") == "NameConflict", what="NameConflict"
    )
    after = apps.read_namespaced_deployment("llama-8b", namespace)
    assert after.metadata.generation == before.metadata.generation
    assert after.spec.template.to_dict() == before.spec.template.to_dict()
    assert after.metadata.owner_references[0].kind == "InferenceModel"


def test_the_apiserver_refuses_a_rule_for_an_unknown_tier(
    testbed: Testbed, operator: OperatorProcess, namespace: str
) -> None:
    router = load_example(ROUTER, namespace)
    router["spec"]["selection"]["rules"][0]["tier"] = "medium"
    out = kubectl(testbed, "apply", "-f", "-", stdin=yaml.safe_dump(router), check=False)
    assert "spec.selection.rules[].tier must be the name of one of spec.tiers" in out


def test_converged_router_costs_zero_writes_on_resync(
    testbed: Testbed, operator: OperatorProcess, api_client: Any, core: Any, apps: Any, namespace: str
) -> None:
    for example in (SMALL, LARGE):
        apply(testbed, load_example(REPO / "examples" / example, namespace))
    apply(testbed, load_example(ROUTER, namespace))
    eventually(
        lambda: _exists(core.read_namespaced_service, namespace, "assistant"), timeout=15, what="children"
    )

    def versions() -> str:
        return json.dumps(
            [
                read_router(api_client, namespace)["metadata"]["resourceVersion"],
                core.read_namespaced_config_map("assistant-router", namespace).metadata.resource_version,
                apps.read_namespaced_deployment("assistant", namespace).metadata.resource_version,
                core.read_namespaced_service("assistant", namespace).metadata.resource_version,
            ]
        )

    def settled() -> str | None:
        first = versions()
        time.sleep(5)  # two resyncs of the test operator (THRIFTY_RESYNC_SECONDS=2)
        return first if versions() == first else None

    eventually(settled, timeout=90, interval=0, what="a router whose resyncs write nothing")


def _exists(read: Any, namespace: str, name: str) -> bool:
    try:
        read(name, namespace)
    except client.exceptions.ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def test_a_binding_to_another_router_role_is_replaced(
    testbed: Testbed, operator: OperatorProcess, api_client: Any, namespace: str
) -> None:
    """A roleRef cannot change: a RoleBinding of the router's name that binds another ClusterRole
    (left by an install under another release name) is deleted and made again."""
    rbac = client.RbacAuthorizationV1Api(api_client)
    kubectl(
        testbed,
        "create",
        "rolebinding",
        "assistant-router",
        "-n",
        namespace,
        "--clusterrole=old-release-router",
        f"--serviceaccount={namespace}:assistant-router",
    )
    for example in (SMALL, LARGE):
        apply(testbed, load_example(REPO / "examples" / example, namespace))
    apply(testbed, load_example(ROUTER, namespace))
    eventually(
        lambda: (
            rbac.read_namespaced_role_binding("assistant-router", namespace).role_ref.name == "thrifty-router"
        ),
        timeout=30,
        what="the binding to name the router role",
    )
    binding = rbac.read_namespaced_role_binding("assistant-router", namespace)
    assert binding.metadata.owner_references[0].kind == "InferenceRouter"
    assert degraded_reason(api_client, namespace) is None
