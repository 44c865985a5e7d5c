"""End to end on the testbed: an InferenceRouter over two tiers (an 8B model on L4 twins, a 70B
model on H100 twins), every part real except the GPUs: the operator renders the router, the
testbed runs `thrifty router` for its pod with the pod's own ServiceAccount, and the router finds
the twins through EndpointSlices.

Shows: rule-based tiering; escalation when the small tier's pods fail; a conversation kept on one
replica; no request sent to an unready pod; streaming end to end.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import OperatorProcess
from router_client import chat, metric, user
from support import condition, delete_namespace, eventually, kubectl, load_example
from thrifty.testbed.cluster import Testbed
from thrifty.testbed.pod_readiness import set_pod_ready
from thrifty.testbed.twins import FAULT_ANNOTATION

REPO = Path(__file__).resolve().parents[2]
ROUTER_CLUSTER_ROLE = REPO / "manifests" / "install" / "clusterrole-thrifty-router.yaml"


@pytest.fixture(scope="module")
def deployed(
    testbed: Testbed, operator: OperatorProcess, core: Any, api_client: Any
) -> Iterator[dict[str, Any]]:
    """Two models and the router over them in a namespace of their own, Ready."""
    namespace = f"models-router-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": namespace}})
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "hf-token"}, "stringData": {"token": "hf_test"}}
    )
    kubectl(testbed, "apply", "--server-side", "-f", str(ROUTER_CLUSTER_ROLE))

    small = load_example(REPO / "examples" / "llama-3.1-8b-fp8-h100.yaml", namespace)
    small["spec"]["resources"] = {"gpu": {"product": "NVIDIA-L4", "count": 1}}
    del small["spec"]["scaling"]
    small["spec"]["replicas"] = 2  # the testbed has two L4 nodes
    large = load_example(REPO / "examples" / "llama-3.1-70b-awq-draft-4xh100.yaml", namespace)
    large["spec"]["resources"] = {
        "gpu": {"product": "NVIDIA-H100-80GB-HBM3", "count": 4},
        "tensorParallelSize": 4,
    }
    del large["spec"]["scaling"]
    router = load_example(REPO / "examples" / "routers" / "assistant.yaml", namespace)
    for body in (small, large, router):
        kubectl(testbed, "apply", "-f", "-", stdin=yaml.safe_dump(body))

    def router_ready() -> dict[str, Any] | None:
        body = kubectl(testbed, "get", "ir", "assistant", "-n", namespace, "-o", "json")
        found = condition(json.loads(body), "Ready")
        return json.loads(body) if found and found["status"] == "True" else None

    status = eventually(router_ready, timeout=120, what="the router Ready with endpoints in both tiers")[
        "status"
    ]
    pod = eventually(
        lambda: next(
            (
                p
                for p in core.list_namespaced_pod(
                    namespace, label_selector="thrifty.dev/router=assistant"
                ).items
                if p.status.pod_ip
            ),
            None,
        ),
        what="the router pod",
    )
    address = f"{pod.status.pod_ip}:8000"
    # The router has found both tiers' replicas through its own EndpointSlice watch.
    eventually(
        lambda: (
            metric(address, "thrifty_router_ready_replicas", tier="small") == 2
            and metric(address, "thrifty_router_ready_replicas", tier="large") == 1
        ),
        timeout=30,
        what="the router to discover 2 small and 1 large replicas",
    )
    yield {"namespace": namespace, "address": address, "status": status}
    delete_namespace(core, namespace)


def small_pods(core: Any, namespace: str) -> list[Any]:
    return list(core.list_namespaced_pod(namespace, label_selector="thrifty.dev/model=llama-8b").items)


def test_status_names_each_tier_with_its_endpoints(testbed: Testbed, deployed: dict[str, Any]) -> None:
    def tiers() -> dict[str, Any] | None:
        body = json.loads(
            kubectl(testbed, "get", "ir", "assistant", "-n", deployed["namespace"], "-o", "json")
        )
        found = {t["name"]: t for t in body["status"]["tiers"]}
        return found if found["small"]["readyEndpoints"] == 2 else None

    # Ready needs one endpoint per tier; the second small replica may come a moment later.
    found = eventually(tiers, timeout=30, what="both small replicas in the router's status")
    assert (found["small"]["model"], found["large"]["model"]) == ("llama-8b", "llama-70b")
    assert found["large"]["readyEndpoints"] == 1
    assert deployed["status"]["endpoint"].endswith(".svc:8000/v1")


def test_rules_send_each_request_to_its_tier(deployed: dict[str, Any]) -> None:
    address = deployed["address"]
    assert chat(address, user("What is the capital of France?")).tier == "small"
    assert chat(address, user("Prove step by step that the square root of 2 is irrational.")).tier == "large"
    assert chat(address, user("Write a function."), headers={"x-task-type": "code"}).tier == "large"
    long_document = "The quarterly report lists revenue by region. " * 400  # about 4,600 tokens
    assert chat(address, user(long_document + "Summarize it.")).tier == "large"
    reply = chat(address, user("Hello"))
    assert reply.status == 200
    assert json.loads(reply.body)["model"] == "llama-3.1-8b"  # the tier's served name reached the twin


def test_streaming_passes_tokens_through_as_they_come(deployed: dict[str, Any]) -> None:
    started = time.monotonic()
    reply = chat(
        deployed["address"], user("Prove step by step that 7 is prime."), stream=True, max_tokens=256
    )
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    events = [
        line.removeprefix("data: ").strip() for line in reply.body.splitlines() if line.startswith("data:")
    ]
    assert events[-1] == "[DONE]"
    tokens = [
        e
        for e in events[:-1]
        if json.loads(e)["choices"] and json.loads(e)["choices"][0]["delta"].get("content")
    ]
    # The 70B tier speculates with a draft model, so one chunk carries a step's accepted tokens.
    assert len(tokens) >= 8
    # A buffering proxy would deliver every event at once, at the end: here the first token
    # arrives early and the rest trickle in over most of the request's time.
    elapsed = reply.chunk_times[-1] - started
    assert elapsed > 0.2
    assert reply.chunk_times[0] - started < 0.5 * elapsed
    assert len({round(t, 2) for t in reply.chunk_times}) >= 5


def test_a_conversation_stays_on_one_replica_and_conversations_spread(deployed: dict[str, Any]) -> None:
    address = deployed["address"]
    homes = set()
    for number in range(16):
        messages = [
            {"role": "system", "content": f"You are the assistant of customer {number}. " * 40},
            {"role": "user", "content": f"My order {number} did not arrive."},
        ]
        replicas = []
        for turn in range(4):
            reply = chat(address, messages)
            assert (reply.status, reply.tier) == (200, "small")
            replicas.append(reply.replica)
            messages += [
                {"role": "assistant", "content": json.loads(reply.body)["choices"][0]["message"]["content"]},
                {"role": "user", "content": f"Turn {turn}: any news?"},
            ]
        assert len(set(replicas)) == 1, f"conversation {number} moved between replicas: {replicas}"
        homes.add(replicas[0])
    assert len(homes) == 2, "sixteen conversations should not all share one of two replicas"


def test_no_request_reaches_an_unready_pod(deployed: dict[str, Any], api_client: Any, core: Any) -> None:
    namespace, address = deployed["namespace"], deployed["address"]
    pods = small_pods(core, namespace)
    unready, ready = pods[0], pods[1]
    twin = f"{unready.status.pod_ip}:8000"
    set_pod_ready(
        api_client, namespace=namespace, name=unready.metadata.name, uid=unready.metadata.uid, ready=False
    )
    try:
        eventually(
            lambda: metric(address, "thrifty_router_ready_replicas", tier="small") == 1,
            timeout=30,
            what="the router to drop the unready replica",
        )
        served_before = metric(twin, "vllm:request_success_total")
        replicas = {chat(address, user(f"Question number {n}: what time is it?")).replica for n in range(12)}
        assert replicas == {f"{ready.status.pod_ip}:8000"}
        assert metric(twin, "vllm:request_success_total") == served_before
    finally:
        set_pod_ready(
            api_client, namespace=namespace, name=unready.metadata.name, uid=unready.metadata.uid, ready=True
        )
    eventually(
        lambda: metric(address, "thrifty_router_ready_replicas", tier="small") == 2,
        timeout=30,
        what="the replica back in the router",
    )


def test_requests_escalate_to_the_large_tier_when_the_small_tiers_pods_fail(
    testbed: Testbed, deployed: dict[str, Any], core: Any
) -> None:
    namespace, address = deployed["namespace"], deployed["address"]
    names = [pod.metadata.name for pod in small_pods(core, namespace)]
    escalations_before = metric(address, "thrifty_router_escalations_total")
    for name in names:
        kubectl(
            testbed,
            "annotate",
            "pod",
            name,
            "-n",
            namespace,
            f"{FAULT_ANNOTATION}=CUDA error: illegal memory access",
        )
    try:

        def small_tier_fails() -> bool:
            reply = chat(address, user("Is the small tier down?"))
            return reply.tier == "large"

        eventually(small_tier_fails, timeout=10, what="the fault to reach the twins")
        for stream in (False, True):
            reply = chat(address, user("What is 2 + 2?"), stream=stream)
            assert reply.status == 200
            assert reply.tier == "large"
            assert reply.headers["x-thrifty-escalated-from"] == "small"
            assert "[DONE]" in reply.body if stream else json.loads(reply.body)["choices"]
        assert metric(address, "thrifty_router_escalations_total") >= escalations_before + 2
    finally:
        for name in names:
            kubectl(testbed, "annotate", "pod", name, "-n", namespace, f"{FAULT_ANNOTATION}-")
    eventually(
        lambda: chat(address, user("Back?")).tier == "small", timeout=10, what="the small tier to heal"
    )
