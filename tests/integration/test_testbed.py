"""The testbed is a real Kubernetes: the real scheduler places GPU pods on simulated nodes,
EndpointSlices list pod IPs that a local process can serve at, Prometheus discovers pods."""

from __future__ import annotations

import ipaddress
import json
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client

from support import eventually
from thrifty.testbed.cluster import Testbed


@pytest.fixture
def namespace(core: Any) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    eventually(lambda: _has_default_service_account(core, name), what="default ServiceAccount")
    yield name
    core.delete_namespace(name)


def _has_default_service_account(core: Any, namespace: str) -> bool:
    return any(sa.metadata.name == "default" for sa in core.list_namespaced_service_account(namespace).items)


def gpu_pod_spec(*, product: str, gpus: int, port: int = 8080) -> dict[str, Any]:
    return {
        "nodeSelector": {"nvidia.com/gpu.product": product},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "containers": [
            {
                "name": "server",
                "image": "example.invalid/server:1",
                "ports": [{"containerPort": port, "name": "http"}],
                "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
            }
        ],
    }


def serve_at(ip: str, port: int, body: bytes, path: str = "/") -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = 200 if self.path == path else 404
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(body if status == 200 else b"")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((ip, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_gpu_deployment_is_scheduled_ready_and_reachable_at_its_pod_ip(
    core: Any, apps: Any, namespace: str
) -> None:
    labels = {"app": "gpu-server"}
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "gpu-server"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": gpu_pod_spec(product="NVIDIA-H100-80GB-HBM3", gpus=1),
                },
            },
        },
    )
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "gpu-server"},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )

    def ready_pod() -> Any:
        pods = core.list_namespaced_pod(namespace, label_selector="app=gpu-server").items
        ready = [
            p
            for p in pods
            if any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
        ]
        return ready[0] if ready else None

    pod = eventually(ready_pod, what="a Ready gpu-server pod")
    assert pod.status.phase == "Running"
    assert pod.spec.node_name.startswith("h100-")
    assert ipaddress.ip_address(pod.status.pod_ip) in ipaddress.ip_network("10.244.0.0/16")

    discovery = client.DiscoveryV1Api(core.api_client)

    def slice_addresses() -> list[str]:
        slices = discovery.list_namespaced_endpoint_slice(
            namespace, label_selector="kubernetes.io/service-name=gpu-server"
        ).items
        return [address for s in slices for e in (s.endpoints or []) for address in e.addresses]

    assert eventually(slice_addresses, what="an EndpointSlice with the pod") == [pod.status.pod_ip]

    server = serve_at(pod.status.pod_ip, 8080, b"hello from the pod")
    try:
        with urllib.request.urlopen(f"http://{pod.status.pod_ip}:8080/", timeout=5) as response:
            assert response.read() == b"hello from the pod"
    finally:
        server.shutdown()
        server.server_close()


def test_prometheus_discovers_an_annotated_pod_and_scrapes_it(
    testbed: Testbed, core: Any, namespace: str
) -> None:
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {
                "name": "metrics-pod",
                "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9400"},
            },
            "spec": gpu_pod_spec(product="NVIDIA-L4", gpus=1, port=9400),
        },
    )
    pod = eventually(
        lambda: (p := core.read_namespaced_pod("metrics-pod", namespace)).status.pod_ip and p,
        what="a pod IP",
    )
    server = serve_at(
        pod.status.pod_ip, 9400, b"# TYPE testbed_probe gauge\ntestbed_probe 42\n", path="/metrics"
    )
    try:

        def target_health() -> str | None:
            url = f"{testbed.network.prometheus_url}/api/v1/targets?state=active"
            with urllib.request.urlopen(url, timeout=5) as response:
                targets = json.load(response)["data"]["activeTargets"]
            for target in targets:
                if target["labels"].get("pod") == "metrics-pod" and target["health"] == "up":
                    return str(target["scrapeUrl"])
            return None

        scrape_url = eventually(target_health, timeout=45, what="the pod's target to be up in Prometheus")
        assert scrape_url == f"http://{pod.status.pod_ip}:9400/metrics"

        def sample() -> str | None:
            query = f"{testbed.network.prometheus_url}/api/v1/query?query=testbed_probe{{namespace=%22{namespace}%22}}"
            with urllib.request.urlopen(query, timeout=5) as response:
                result = json.load(response)["data"]["result"]
            return result[0]["value"][1] if result else None

        assert eventually(sample, timeout=30, what="the scraped sample") == "42"
    finally:
        server.shutdown()
        server.server_close()


def test_pod_asking_for_more_gpus_than_any_node_has_stays_pending_with_the_scheduler_reason(
    core: Any, namespace: str
) -> None:
    core.create_namespaced_pod(
        namespace,
        {"metadata": {"name": "too-big"}, "spec": gpu_pod_spec(product="NVIDIA-H100-80GB-HBM3", gpus=16)},
    )

    def unschedulable() -> Any:
        pod = core.read_namespaced_pod("too-big", namespace)
        for condition in pod.status.conditions or []:
            if condition.type == "PodScheduled" and condition.reason == "Unschedulable":
                return pod, condition
        return None

    pod, condition = eventually(unschedulable, what="the scheduler to mark the pod Unschedulable")
    assert pod.status.phase == "Pending"
    assert pod.spec.node_name is None
    assert "Insufficient nvidia.com/gpu" in condition.message


def test_pod_asking_for_the_l4_product_lands_on_an_l4_node(core: Any, namespace: str) -> None:
    core.create_namespaced_pod(
        namespace, {"metadata": {"name": "small"}, "spec": gpu_pod_spec(product="NVIDIA-L4", gpus=1)}
    )
    pod = eventually(
        lambda: (p := core.read_namespaced_pod("small", namespace)).spec.node_name and p,
        what="the pod to be bound",
    )
    assert pod.spec.node_name.startswith("l4-")
    node = core.read_node(pod.spec.node_name)
    assert node.metadata.labels["nvidia.com/gpu.product"] == "NVIDIA-L4"
