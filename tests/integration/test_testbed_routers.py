"""Router pods on the testbed run a real `thrifty router` at their pod IP, with the pod's own
configMap volumes and ServiceAccount: what the operator's router Deployment gets on a cluster.

No operator here: each test writes by hand what the InferenceRouter reconcile would (a
ServiceAccount, its RoleBinding, the router ConfigMap and a Deployment of the router contract).
"""

from __future__ import annotations

import json
import os
import re
import signal
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from support import eventually
from thrifty.api import RouterConfig
from thrifty.testbed.cluster import Testbed
from thrifty.testbed.processes import pid_alive

ROUTER = "assistant"
TIER_SERVICE = "llama-8b"


@pytest.fixture
def namespace(core: Any) -> Iterator[str]:
    name = f"r-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    eventually(
        lambda: any(sa.metadata.name == "default" for sa in core.list_namespaced_service_account(name).items),
        what="default ServiceAccount",
    )
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="module")
def endpointslice_reader(api_client: Any) -> Iterator[str]:
    """A ClusterRole like the chart's thrifty-router: list and watch EndpointSlices, nothing else."""
    rbac = client.RbacAuthorizationV1Api(api_client)
    name = f"test-router-{uuid.uuid4().hex[:6]}"
    rbac.create_cluster_role(
        {
            "metadata": {"name": name},
            "rules": [
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                }
            ],
        }
    )
    yield name
    rbac.delete_cluster_role(name)


def router_config(namespace: str, *, cap: int) -> str:
    config = RouterConfig.model_validate(
        {
            "name": ROUTER,
            "namespace": namespace,
            "generation": 1,
            "spec": {"tiers": [{"name": "small", "model": TIER_SERVICE}]},
            "models": {
                TIER_SERVICE: {
                    "service": TIER_SERVICE,
                    "servedName": TIER_SERVICE,
                    "port": 8000,
                    "maxInFlightPerReplica": cap,
                }
            },
        }
    )
    return config.model_dump_json(exclude_none=True)


def write_router_config(core: Any, namespace: str, *, cap: int) -> None:
    body = {
        "metadata": {"name": f"{ROUTER}-router"},
        "data": {"router.json": router_config(namespace, cap=cap)},
    }
    try:
        core.replace_namespaced_config_map(f"{ROUTER}-router", namespace, body)
    except client.exceptions.ApiException as error:
        if error.status != 404:
            raise
        core.create_namespaced_config_map(namespace, body)


def create_tier_backend(core: Any, namespace: str) -> None:
    """The tier's Service with one ready pod behind it (a plain pod: kwok makes it Ready at once),
    so the router has a replica to discover, through its own RBAC."""
    labels = {"app": "llama-8b-stand-in"}
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "llama-8b-stand-in", "labels": labels},
            "spec": {"containers": [{"name": "vllm", "image": "example.invalid/vllm:1"}]},
        },
    )
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": TIER_SERVICE},
            "spec": {"selector": labels, "ports": [{"name": "http", "port": 8000, "targetPort": 8000}]},
        },
    )


def create_router_identity(api_client: Any, namespace: str, *, cluster_role: str | None) -> None:
    """The router's ServiceAccount and, when ``cluster_role`` is given, its RoleBinding."""
    account = f"{ROUTER}-router"
    client.CoreV1Api(api_client).create_namespaced_service_account(namespace, {"metadata": {"name": account}})
    if cluster_role is not None:
        client.RbacAuthorizationV1Api(api_client).create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": account},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": cluster_role,
                },
                "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
            },
        )


def create_router_deployment(apps: Any, namespace: str) -> None:
    """A Deployment of the router-pod contract (what the InferenceRouter reconcile renders)."""
    labels = {
        "thrifty.dev/role": "router",
        "thrifty.dev/router": ROUTER,
        "app.kubernetes.io/managed-by": "thrifty",
    }
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": f"{ROUTER}-router", "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"thrifty.dev/router": ROUTER, "thrifty.dev/role": "router"}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": f"{ROUTER}-router",
                        "containers": [
                            {
                                "name": "router",
                                "image": "example.invalid/thrifty:1",
                                "command": ["thrifty"],
                                "args": [
                                    "router",
                                    "--config",
                                    "/etc/thrifty/router/router.json",
                                    "--port",
                                    "8000",
                                    "--reload-interval",
                                    "0.5",
                                ],
                                "ports": [{"containerPort": 8000, "name": "http"}],
                                "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}},
                                "volumeMounts": [
                                    {"name": "config", "mountPath": "/etc/thrifty/router", "readOnly": True}
                                ],
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": f"{ROUTER}-router"}}],
                    },
                },
            },
        },
    )


def router_pod(core: Any, namespace: str, *, ready: bool) -> Any:
    """The router pod once it is Running with an IP (and Ready, if ``ready``), else None."""
    for pod in core.list_namespaced_pod(namespace, label_selector="thrifty.dev/role=router").items:
        if pod.metadata.deletion_timestamp or pod.status.phase != "Running" or not pod.status.pod_ip:
            continue
        is_ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        if is_ready == ready:
            return pod
    return None


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


def metric(pod_ip: str, name: str, tier: str) -> float | None:
    _, text = get(f"http://{pod_ip}:8000/metrics")
    found = re.search(rf'^{name}{{tier="{tier}"}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else None


def router_pid(testbed: Testbed, namespace: str, pod_name: str) -> int | None:
    try:
        return int((testbed.state_dir / "routers" / f"{namespace}_{pod_name}.pid").read_text())
    except FileNotFoundError:
        return None


def router_log(testbed: Testbed, namespace: str, pod_name: str) -> str:
    path: Path = testbed.state_dir / "logs" / f"router-{namespace}_{pod_name}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def launcher_log(testbed: Testbed) -> str:
    return (testbed.state_dir / "logs" / "process-pods.log").read_text(errors="replace")


@pytest.mark.timeout(150)
def test_router_pod_runs_on_a_cpu_node_serves_at_its_ip_follows_its_configmap_and_stops_with_it(
    testbed: Testbed, api_client: Any, core: Any, apps: Any, namespace: str, endpointslice_reader: str
) -> None:
    create_tier_backend(core, namespace)
    create_router_identity(api_client, namespace, cluster_role=endpointslice_reader)
    write_router_config(core, namespace, cap=4)
    create_router_deployment(apps, namespace)

    pod = eventually(lambda: router_pod(core, namespace, ready=True), timeout=60, what="a Ready router pod")
    assert pod.spec.node_name.startswith("cpu-")  # no GPU toleration: only a CPU node takes it
    ip = pod.status.pod_ip

    status, body = get(f"http://{ip}:8000/health")
    assert status == 200
    assert json.loads(body)["discovery"] is True  # its ServiceAccount may watch EndpointSlices
    _, body = get(f"http://{ip}:8000/v1/models")
    assert [model["id"] for model in json.loads(body)["data"]] == [ROUTER, "small"]
    # The stand-in pod behind the tier's Service, found through the router's own EndpointSlice watch.
    assert eventually(lambda: metric(ip, "thrifty_router_ready_replicas", "small") == 1.0, what="1 replica")
    assert metric(ip, "thrifty_router_max_in_flight_per_replica", "small") == 4.0

    write_router_config(core, namespace, cap=7)
    eventually(
        lambda: metric(ip, "thrifty_router_max_in_flight_per_replica", "small") == 7.0,
        timeout=30,
        what="the edited ConfigMap's cap to reach the router",
    )

    pid = router_pid(testbed, namespace, pod.metadata.name)
    assert pid is not None
    assert pid_alive(pid)
    apps.delete_namespaced_deployment(f"{ROUTER}-router", namespace)
    eventually(lambda: not pid_alive(pid), timeout=30, what=f"router process {pid} to stop")
    pod_root = testbed.state_dir / "routers" / f"{namespace}_{pod.metadata.name}"
    eventually(lambda: not pod_root.exists(), what="the pod's files to be removed, as its volumes would be")


@pytest.mark.timeout(150)
def test_router_process_that_dies_is_restarted_and_its_pod_is_not_ready_meanwhile(
    testbed: Testbed, api_client: Any, core: Any, apps: Any, namespace: str, endpointslice_reader: str
) -> None:
    create_router_identity(api_client, namespace, cluster_role=endpointslice_reader)
    write_router_config(core, namespace, cap=4)
    create_router_deployment(apps, namespace)
    pod = eventually(lambda: router_pod(core, namespace, ready=True), timeout=60, what="a Ready router pod")
    first = router_pid(testbed, namespace, pod.metadata.name)
    assert first is not None

    os.kill(first, signal.SIGKILL)  # the testbed's own child, standing in for a crashing container

    def restarted() -> Any:
        current = core.read_namespaced_pod(pod.metadata.name, namespace)
        return current.status.container_statuses[0].restart_count == 1 and current

    eventually(restarted, timeout=30, what="restartCount 1 on the router container")
    again = eventually(lambda: router_pod(core, namespace, ready=True), timeout=60, what="Ready again")
    assert again.metadata.uid == pod.metadata.uid
    second = router_pid(testbed, namespace, pod.metadata.name)
    assert second is not None
    assert second != first
    assert pid_alive(second)
    assert get(f"http://{again.status.pod_ip}:8000/health")[0] == 200
    assert f"router {namespace}/{pod.metadata.name}: process exited with code -9; restart 1" in launcher_log(
        testbed
    )


@pytest.mark.timeout(150)
def test_router_without_its_rolebinding_turns_ready_but_is_forbidden_to_watch_endpointslices(
    testbed: Testbed, api_client: Any, core: Any, apps: Any, namespace: str
) -> None:
    create_tier_backend(core, namespace)
    create_router_identity(api_client, namespace, cluster_role=None)
    write_router_config(core, namespace, cap=4)
    create_router_deployment(apps, namespace)

    # /health answers without discovery (the router fails open to the Services), so the pod is
    # Ready, as the same pod would be on a cluster; what is missing shows in the logs.
    pod = eventually(lambda: router_pod(core, namespace, ready=True), timeout=60, what="a Ready router pod")
    _, body = get(f"http://{pod.status.pod_ip}:8000/health")
    assert json.loads(body)["discovery"] is False
    account = f"system:serviceaccount:{namespace}:{ROUTER}-router"
    eventually(
        lambda: "forbidden" in router_log(testbed, namespace, pod.metadata.name),
        timeout=30,
        what="the router's own log to report the forbidden EndpointSlice list",
    )
    eventually(
        lambda: (
            f"{account} is forbidden to list/watch discovery.k8s.io endpointslices in {namespace}"
            in launcher_log(testbed)
        ),
        what="the launcher to name the missing permission",
    )


@pytest.mark.timeout(150)
def test_router_pod_without_its_configmap_stays_not_ready_until_the_configmap_appears(
    testbed: Testbed, api_client: Any, core: Any, apps: Any, namespace: str, endpointslice_reader: str
) -> None:
    create_router_identity(api_client, namespace, cluster_role=endpointslice_reader)
    create_router_deployment(apps, namespace)

    pod = eventually(
        lambda: router_pod(core, namespace, ready=False), timeout=60, what="a Running router pod"
    )
    eventually(
        lambda: f"ConfigMap '{ROUTER}-router' (volume 'config') not found" in launcher_log(testbed),
        what="the launcher to say why the pod waits",
    )
    assert router_pid(testbed, namespace, pod.metadata.name) is None
    assert router_pod(core, namespace, ready=True) is None

    write_router_config(core, namespace, cap=4)
    ready = eventually(lambda: router_pod(core, namespace, ready=True), timeout=60, what="a Ready router pod")
    assert ready.metadata.uid == pod.metadata.uid
