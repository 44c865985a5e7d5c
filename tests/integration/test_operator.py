"""The operator against the real apiserver: examples become running vLLM Deployments, edits roll,
a converged model costs no writes, invalid edits degrade without tearing anything down, restarts
change nothing, and the HF token never leaks."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from conftest import OperatorProcess, start_operator, stop_operator
from support import condition, delete_namespace, eventually, kubectl, load_example, scratch_namespace
from thrifty.k8s import objects
from thrifty.reconcile.model import reconcile_model
from thrifty.testbed.cluster import Testbed

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
CANARY_TOKEN = "hf_CANARY" + uuid.uuid4().hex  # must never show up anywhere but the Secret


@pytest.fixture
def namespace(testbed: Testbed, core: Any) -> Iterator[str]:
    with scratch_namespace(core, "models", hf_token=CANARY_TOKEN, wait_for_pods=True) as name:
        yield name


def apply_ready_example(testbed: Testbed, api_client: Any, namespace: str, example: str) -> str:
    """Apply an example into ``namespace`` with kubectl, wait until it is Ready, return its name."""
    body = load_example(REPO / "examples" / example, namespace)
    kubectl(testbed, "apply", "-f", "-", stdin=yaml.safe_dump(body))
    wait_ready(api_client, namespace, body["metadata"]["name"])
    return str(body["metadata"]["name"])


def patch_model(testbed: Testbed, namespace: str, name: str, patch: dict[str, Any]) -> None:
    """A merge patch of the InferenceModel, as a person would make it with kubectl."""
    kubectl(testbed, "patch", "im", name, "-n", namespace, "--type=merge", "-p", json.dumps(patch))


def custom(api_client: Any) -> Any:
    return client.CustomObjectsApi(api_client)


def read_model(api_client: Any, namespace: str, name: str) -> dict[str, Any]:
    body: dict[str, Any] = custom(api_client).get_namespaced_custom_object(
        "thrifty.dev", "v1alpha1", namespace, "inferencemodels", name
    )
    return body


def children_versions(api_client: Any, namespace: str, name: str) -> dict[str, str]:
    apps, core, policy = (
        client.AppsV1Api(api_client),
        client.CoreV1Api(api_client),
        client.PolicyV1Api(api_client),
    )
    return {
        "model": read_model(api_client, namespace, name)["metadata"]["resourceVersion"],
        "deployment": apps.read_namespaced_deployment(name, namespace).metadata.resource_version,
        "service": core.read_namespaced_service(name, namespace).metadata.resource_version,
        "pdb": policy.read_namespaced_pod_disruption_budget(name, namespace).metadata.resource_version,
    }


def engine_args_of(apps: Any, namespace: str, name: str) -> list[str]:
    deployment = apps.read_namespaced_deployment(name, namespace)
    return list(deployment.spec.template.spec.containers[0].args)


def wait_ready(api_client: Any, namespace: str, name: str, timeout: float = 30) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        body = read_model(api_client, namespace, name)
        ok = condition(body, "Ready")
        return body if ok and ok["status"] == "True" else None

    return eventually(ready, timeout=timeout, what=f"{name} Ready")


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_gets_children_fast_lands_on_its_gpus_and_turns_ready(
    testbed: Testbed,
    operator: OperatorProcess,
    api_client: Any,
    core: Any,
    apps: Any,
    namespace: str,
    example: Path,
) -> None:
    body = load_example(example, namespace)
    name = body["metadata"]["name"]
    kubectl(testbed, "apply", "-f", "-", stdin=yaml.safe_dump(body))
    applied = time.monotonic()  # the object exists from here on
    eventually(
        lambda: _children_exist(api_client, namespace, name), timeout=10, interval=0.05, what="children"
    )
    children_seconds = time.monotonic() - applied
    assert children_seconds <= 2.0, f"children took {children_seconds:.2f}s"

    model = wait_ready(api_client, namespace, name)
    product = body["spec"]["resources"]["gpu"]["product"]
    pods = core.list_namespaced_pod(namespace, label_selector=f"thrifty.dev/model={name}").items
    assert pods
    for pod in pods:
        node = core.read_node(pod.spec.node_name)
        assert node.metadata.labels["nvidia.com/gpu.product"] == product
    assert model["status"]["observedGeneration"] == model["metadata"]["generation"]
    assert model["status"]["readyReplicas"] >= 1

    table = kubectl(testbed, "get", "im", name, "-n", namespace)
    header, row = table.strip().splitlines()
    assert header.split() == ["NAME", "READY", "REPLICAS", "MAXNUMSEQS", "MODEL", "AGE"]
    cells = row.split()
    assert cells[0] == name
    assert cells[1] == "True"
    assert cells[3] == str(
        body["spec"].get("batching", {}).get("maxNumSeqs", model["status"]["maxNumSeqs"]["engine"])
    )
    assert "<none>" not in cells


def _children_exist(api_client: Any, namespace: str, name: str) -> bool:
    try:
        children_versions(api_client, namespace, name)
    except client.exceptions.ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def test_editing_max_num_seqs_rolls_the_deployment_and_observed_generation_follows(
    testbed: Testbed, operator: OperatorProcess, api_client: Any, apps: Any, namespace: str
) -> None:
    name = apply_ready_example(testbed, api_client, namespace, "qwen2.5-1.5b-ngram-l4.yaml")
    before = apps.read_namespaced_deployment(name, namespace).metadata.generation

    patch_model(testbed, namespace, name, {"spec": {"batching": {"maxNumSeqs": 48}}})

    def rolled() -> list[str] | None:
        args = engine_args_of(apps, namespace, name)
        return (
            args
            if "48" in args[args.index("--max-num-seqs") + 1 : args.index("--max-num-seqs") + 2]
            else None
        )

    eventually(rolled, what="--max-num-seqs 48 in the Deployment")
    assert apps.read_namespaced_deployment(name, namespace).metadata.generation == before + 1

    def observed() -> dict[str, Any] | None:
        model = read_model(api_client, namespace, name)
        status = model.get("status") or {}
        if status.get("observedGeneration") == model["metadata"]["generation"] and (
            (status.get("maxNumSeqs") or {}).get("engine") == 48
        ):
            return model
        return None

    eventually(observed, what="observedGeneration to follow generation")


def test_converged_model_costs_zero_writes_on_resync(
    testbed: Testbed, operator: OperatorProcess, api_client: Any, namespace: str
) -> None:
    name = apply_ready_example(testbed, api_client, namespace, "llama-3.1-8b-fp8-h100.yaml")
    time.sleep(3)  # let the last status write and rollout events settle
    before = children_versions(api_client, namespace, name)
    time.sleep(7)  # more than three resync periods of 2 s
    assert children_versions(api_client, namespace, name) == before


def test_unknown_extra_arg_degrades_and_leaves_the_running_deployment_untouched(
    testbed: Testbed, operator: OperatorProcess, api_client: Any, apps: Any, namespace: str
) -> None:
    name = apply_ready_example(testbed, api_client, namespace, "qwen2.5-1.5b-ngram-l4.yaml")
    deployment_before = apps.read_namespaced_deployment(name, namespace).metadata.resource_version

    patch = {"spec": {"engine": {"extraArgs": ["--enable-turbo-mode"]}}}
    patch_model(testbed, namespace, name, patch)

    def degraded() -> dict[str, Any] | None:
        found = condition(read_model(api_client, namespace, name), "Degraded")
        return found if found and found["status"] == "True" else None

    found = eventually(degraded, what="Degraded=True")
    assert found["reason"] == "InvalidEngineArgs"
    assert "--enable-turbo-mode" in found["message"]
    assert "spec.engine.extraArgs" in found["message"]
    time.sleep(3)
    assert apps.read_namespaced_deployment(name, namespace).metadata.resource_version == deployment_before
    events = client.CoreV1Api(api_client).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}"
    )
    assert any(e.reason == "InvalidEngineArgs" and e.type == "Warning" for e in events.items)

    # Fixing the spec clears the condition.
    patch_model(testbed, namespace, name, {"spec": {"engine": {"extraArgs": []}}})
    eventually(
        lambda: (
            (c := condition(read_model(api_client, namespace, name), "Degraded")) and c["status"] == "False"
        ),
        what="Degraded=False after the fix",
    )


def test_gpu_product_no_node_offers_degrades_without_touching_the_deployment(
    testbed: Testbed, operator: OperatorProcess, api_client: Any, apps: Any, namespace: str
) -> None:
    name = apply_ready_example(testbed, api_client, namespace, "qwen2.5-1.5b-ngram-l4.yaml")
    deployment_before = apps.read_namespaced_deployment(name, namespace).metadata.resource_version

    patch = {"spec": {"resources": {"gpu": {"product": "NVIDIA-B200"}}}}
    patch_model(testbed, namespace, name, patch)

    def degraded() -> dict[str, Any] | None:
        found = condition(read_model(api_client, namespace, name), "Degraded")
        return found if found and found["reason"] == "NoMatchingNodes" else None

    found = eventually(degraded, what="Degraded=True NoMatchingNodes")
    assert "NVIDIA-B200" in found["message"]
    assert "NVIDIA-L4" in found["message"]
    assert apps.read_namespaced_deployment(name, namespace).metadata.resource_version == deployment_before


@pytest.fixture
def unwatched_namespace(core: Any) -> Iterator[str]:
    """A namespace the session's operator does not watch, for a test that runs its own."""
    name = f"restart-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name}})
    core.create_namespaced_secret(
        name, {"metadata": {"name": "hf-token"}, "stringData": {"token": CANARY_TOKEN}}
    )
    yield name
    delete_namespace(core, name)


def test_operator_restart_changes_nothing_and_picks_up_edits_made_while_down(
    testbed: Testbed, thrifty_crds: None, api_client: Any, apps: Any, unwatched_namespace: str, tmp_path: Path
) -> None:
    namespace = unwatched_namespace
    first = start_operator(testbed, tmp_path / "first.log", namespaces=namespace, port=18081)
    try:
        body = load_example(REPO / "examples" / "llama-3.1-8b-fp8-h100.yaml", namespace)
        body["metadata"]["name"] = "restart-me"
        kubectl(testbed, "apply", "-f", "-", stdin=yaml.safe_dump(body))
        wait_ready(api_client, namespace, "restart-me")
        time.sleep(3)
    finally:
        stop_operator(first)
    before = children_versions(api_client, namespace, "restart-me")

    second = start_operator(testbed, tmp_path / "second.log", namespaces=namespace, port=18081)
    try:
        time.sleep(6)
        assert children_versions(api_client, namespace, "restart-me") == before
    finally:
        stop_operator(second)

    patch = {"spec": {"batching": {"maxNumBatchedTokens": 12288}}}
    patch_model(testbed, namespace, "restart-me", patch)
    third = start_operator(testbed, tmp_path / "third.log", namespaces=namespace, port=18081)
    try:
        eventually(
            lambda: "12288" in engine_args_of(apps, namespace, "restart-me"),
            what="the edit made while the operator was down",
        )
    finally:
        stop_operator(third)


def test_hf_token_never_appears_in_args_env_status_events_or_logs(
    testbed: Testbed, operator: OperatorProcess, api_client: Any, apps: Any, namespace: str
) -> None:
    name = apply_ready_example(testbed, api_client, namespace, "llama-3.1-70b-awq-draft-4xh100.yaml")

    deployment = apps.read_namespaced_deployment(name, namespace)
    container = deployment.spec.template.spec.containers[0]
    places = {
        "args": json.dumps(container.args),
        "env": json.dumps([e.to_dict() for e in container.env or []]),
        "status": json.dumps(read_model(api_client, namespace, name).get("status")),
        "events": kubectl(testbed, "get", "events", "-n", namespace, "-o", "json"),
        "operator log": operator.logs(),
        "deployment": json.dumps(deployment.to_dict(), default=str),
    }
    leaks = [where for where, text in places.items() if CANARY_TOKEN in text]
    assert leaks == []
    env = {e.name: e.value for e in container.env}
    assert env["HF_TOKEN_PATH"] == "/var/run/secrets/thrifty/credentials/token"


def test_a_status_computed_from_a_stale_read_never_overwrites_a_newer_one(
    testbed: Testbed, thrifty_crds: None, api_client: Any, unwatched_namespace: str
) -> None:
    """The reconcile and the control loop both write a model's status. A reconcile working from
    a body read before the loop recorded a decision must not drop that decision: its write is
    refused as stale, and it redoes the reconcile on the object as it is now."""
    body = load_example(REPO / "examples" / "llama-3.1-8b-fp8-h100.yaml", unwatched_namespace)
    kubectl(testbed, "apply", "-f", "-", stdin=yaml.safe_dump(body))
    stale = objects.read(
        api_client, "thrifty.dev/v1alpha1", "InferenceModel", "llama-8b", namespace=unwatched_namespace
    )
    assert stale is not None
    decision = {"time": "2026-11-27T12:00:00Z", "action": "ScaleUp", "from": 1, "to": 2, "reason": "the loop"}
    objects.patch_status(api_client, stale, {"decisions": [decision]})  # the loop, meanwhile

    status = reconcile_model(api_client, stale)

    stored = read_model(api_client, unwatched_namespace, "llama-8b")
    assert stored["status"]["decisions"] == [decision]
    assert status["decisions"] == [decision]
    assert condition(stored, "Degraded") is not None  # the reconcile's own part was written too
