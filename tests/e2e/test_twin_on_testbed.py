"""End to end on the testbed: an InferenceModel's pods are served by vLLM twins at their own IPs,
turn Ready only after the simulated model load, answer streamed chat completions, and are
scraped by Prometheus under vLLM's own metric names."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from conftest import TWIN_LOAD_SECONDS, OperatorProcess
from support import eventually, kubectl, scratch_namespace
from thrifty.testbed.cluster import Testbed

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def namespace(core: Any) -> Iterator[str]:
    with scratch_namespace(core, "models", wait_for_pods=True) as name:
        yield name


def health(ip: str) -> int | None:
    try:
        with urllib.request.urlopen(f"http://{ip}:8000/health", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return None


def prometheus_query(testbed: Testbed, query: str) -> list[dict[str, Any]]:
    url = f"{testbed.network.prometheus_url}/api/v1/query?query={urllib.parse.quote(query)}"
    with urllib.request.urlopen(url, timeout=5) as response:
        result: list[dict[str, Any]] = json.load(response)["data"]["result"]
    return result


def test_model_pods_are_twins_that_load_then_serve_stream_and_get_scraped(
    testbed: Testbed, operator: OperatorProcess, api_client: Any, core: Any, namespace: str
) -> None:
    body = yaml.safe_load((REPO / "examples" / "qwen2.5-1.5b-ngram-l4.yaml").read_text())
    body["metadata"]["namespace"] = namespace
    name, served_name = body["metadata"]["name"], body["spec"]["model"]["servedName"]
    kubectl(testbed, "apply", "-f", "-", stdin=yaml.safe_dump(body))

    def running_pod() -> Any:
        pods = core.list_namespaced_pod(namespace, label_selector=f"thrifty.dev/model={name}").items
        return next((p for p in pods if p.status.phase == "Running" and p.status.pod_ip), None)

    pod = eventually(running_pod, what="a Running vLLM pod with an IP")
    ip = pod.status.pod_ip
    # The twin binds at once but, like vLLM, answers /health with 503 until the model is loaded.
    # (On a busy machine the first answer, or this test's first sight of the Running pod, can come
    # after the load: then the pod must have started that long ago. Its start time has whole
    # seconds, hence the second of slack.)
    first = eventually(lambda: health(ip), timeout=5, interval=0.05, what="the twin to answer")
    started = pod.status.start_time.timestamp()
    assert first == 503 or time.time() - started >= TWIN_LOAD_SECONDS * 0.75 - 1.0, (
        first,
        time.time() - started,
    )

    def model_ready() -> bool:
        model = kubectl(testbed, "get", "im", name, "-n", namespace, "-o", "json")
        conditions = json.loads(model).get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    eventually(model_ready, what="the InferenceModel to turn Ready")
    assert time.time() - started >= TWIN_LOAD_SECONDS * 0.75 - 1.0
    assert health(ip) == 200

    # Take the address from the Service's EndpointSlice, as the router will. The model is Ready
    # with its first replica; the slice lists every replica once each twin has loaded.
    def ready_addresses_of_every_pod() -> list[str] | None:
        slices = client.DiscoveryV1Api(api_client).list_namespaced_endpoint_slice(
            namespace, label_selector=f"kubernetes.io/service-name={name}"
        )
        addresses = sorted(
            address
            for s in slices.items
            for endpoint in s.endpoints or []
            if endpoint.conditions.ready
            for address in endpoint.addresses
        )
        listed = core.list_namespaced_pod(namespace, label_selector=f"thrifty.dev/model={name}").items
        return addresses if addresses and addresses == sorted(p.status.pod_ip for p in listed) else None

    ready_addresses = eventually(ready_addresses_of_every_pod, what="every pod's address ready in the slice")
    pods = core.list_namespaced_pod(namespace, label_selector=f"thrifty.dev/model={name}").items
    assert len(pods) == body["spec"]["replicas"]

    request = urllib.request.Request(
        f"http://{ready_addresses[0]}:8000/v1/chat/completions",
        data=json.dumps(
            {
                "model": served_name,
                "messages": [{"role": "user", "content": "Say hello in five words."}],
                "max_tokens": 12,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    chunks = []
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        for line in response:
            if line.startswith(b"data: "):
                chunks.append(line[6:].strip())
    assert chunks[-1] == b"[DONE]"
    events = [json.loads(c) for c in chunks[:-1]]
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"])
    assert text.strip()
    assert sum(1 for e in events if e["choices"]) >= 2  # tokens arrived over several chunks
    assert events[-1]["usage"]["completion_tokens"] == 12

    def scraped_tokens() -> float | None:
        result = prometheus_query(
            testbed,
            f'sum(vllm:generation_tokens_total{{namespace="{namespace}",model_name="{served_name}"}})',
        )
        value = float(result[0]["value"][1]) if result else 0.0
        return value if value >= 12 else None

    assert eventually(scraped_tokens, timeout=30, what="Prometheus to scrape the generated tokens") >= 12

    def scraped_pods() -> set[str] | None:
        running = prometheus_query(testbed, f'vllm:num_requests_running{{namespace="{namespace}"}}')
        found = {r["metric"]["pod"] for r in running}
        return found if found == {p.metadata.name for p in pods} else None

    eventually(scraped_pods, timeout=30, what="every pod's vLLM metrics in Prometheus")
