"""The few Kubernetes calls the testbed itself makes while coming up."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from thrifty.testbed.processes import TestbedError


def core_api(kubeconfig: Path) -> Any:
    api_client = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    return client.CoreV1Api(api_client)


def wait_for_service_account(kubeconfig: Path, *, namespace: str, timeout: float) -> None:
    """Pods are refused until the controller-manager has made the namespace's `default` account."""
    api = core_api(kubeconfig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            api.read_namespaced_service_account("default", namespace)
            return
        except ApiException as error:
            if error.status != 404:
                raise
        time.sleep(0.2)
    raise TestbedError(f"the `default` ServiceAccount in {namespace} did not appear within {timeout:.0f}s")


def create_nodes(kubeconfig: Path, nodes: list[dict[str, Any]]) -> None:
    api = core_api(kubeconfig)
    for node in nodes:
        try:
            api.create_node(node)
        except ApiException as error:
            if error.status != 409:
                raise TestbedError(
                    f"creating node {node['metadata']['name']}: {error.reason}: {error.body}"
                ) from error


def node_is_ready(node: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or []))


def wait_for_nodes_ready(kubeconfig: Path, names: list[str], *, timeout: float = 60) -> None:
    api = core_api(kubeconfig)
    deadline = time.monotonic() + timeout
    pending = set(names)
    while time.monotonic() < deadline:
        ready = {n.metadata.name for n in api.list_node().items if node_is_ready(n)}
        pending -= ready
        if not pending:
            return
        time.sleep(0.3)
    raise TestbedError(f"nodes not Ready within {timeout:.0f}s: {sorted(pending)} (is kwok running?)")


def service_account_kubeconfig(
    admin_kubeconfig: Path, *, namespace: str, name: str, path: Path, expiration_seconds: int = 86400
) -> Path:
    """A kubeconfig that acts as a ServiceAccount, with a token from the TokenRequest API: what
    the kubelet projects into a real pod. Processes the testbed runs for simulated pods (the
    operator, routers) use it, so their RBAC is the one the cluster grants, not the admin's."""
    api = core_api(admin_kubeconfig)
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=expiration_seconds)
    )
    token = api.create_namespaced_service_account_token(name, namespace, request).status.token
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    cluster = admin["clusters"][0]
    user = f"system:serviceaccount:{namespace}:{name}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {"name": user, "context": {"cluster": cluster["name"], "user": user, "namespace": namespace}}
        ],
        "current-context": user,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path
