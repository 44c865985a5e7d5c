"""Local processes that stand in for the containers of simulated pods.

kwok simulates pods: no container ever runs, and the testbed itself serves only vLLM, router and
operator pods. Where a test needs what another container would do (the `helm test` check), it runs
the container's own command here, as the pod spec describes it: the same argv (the image's `thrifty` and `python` are
this checkout's), the same environment (fieldRefs resolved from the pod), listening on the pod's
own IP (local inside the testbed's network namespace), and with a token of the pod's
ServiceAccount instead of the admin's certificate. Nothing of the pod spec is rewritten except
what a node would provide: the pod's address and, for a Service name, what cluster DNS and
kube-proxy would resolve it to.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from support import kubectl
from thrifty.testbed.cluster import Testbed
from thrifty.testbed.pod_container import container_environment

ENTRY_POINTS = {"thrifty": [sys.executable, "-m", "thrifty"], "python": [sys.executable]}
"""The image's executables, as this checkout provides them."""


def container(pod: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """The container ``name`` of ``pod``, or its only container."""
    containers: list[dict[str, Any]] = pod["spec"]["containers"]
    found = [c for c in containers if name is None or c["name"] == name]
    if len(found) != 1:
        names = [c["name"] for c in containers]
        raise ValueError(f"pod {pod['metadata']['name']}: no single container {name!r} among {names}")
    return found[0]


def container_argv(pod: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    """The container's command and args as a local argv; 0.0.0.0 (every address of the pod's own
    network namespace) becomes the pod's IP, which is what binding all addresses means in a pod."""
    command: list[str] = spec.get("command") or []
    if not command:
        raise ValueError(
            f"container {spec['name']} runs the image's entrypoint, which a stand-in cannot know: "
            "set `command` in the pod spec"
        )
    try:
        entry = ENTRY_POINTS[command[0]]
    except KeyError:
        raise ValueError(
            f"container {spec['name']} runs {command[0]!r}; a stand-in knows only {sorted(ENTRY_POINTS)}"
        ) from None
    pod_ip = pod["status"]["podIP"]
    return [*entry, *(arg.replace("0.0.0.0", pod_ip) for arg in [*command[1:], *(spec.get("args") or [])])]


def process_environment(pod: dict[str, Any], spec: dict[str, Any], kubeconfig: Path) -> dict[str, str]:
    # Nothing of the caller's environment but PATH: no admin KUBECONFIG, no in-cluster variables.
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **dict(container_environment(pod, spec)),
        "KUBECONFIG": str(kubeconfig),
    }


def resolve_service_names(testbed: Testbed, namespace: str, text: str) -> str:
    """Replace every `<service>.<namespace>.svc[.cluster.local]` in ``text`` with a ready endpoint
    address of that Service: what cluster DNS and kube-proxy do for a pod. Only Services whose
    ports equal their target ports can be resolved by name alone; others fail loudly."""
    services = json.loads(kubectl(testbed, "get", "services", "-n", namespace, "-o", "json"))["items"]
    for service in services:
        name = service["metadata"]["name"]
        pattern = re.compile(rf"\b{re.escape(name)}\.{re.escape(namespace)}\.svc(\.cluster\.local)?\b")
        if pattern.search(text):
            text = pattern.sub(service_endpoint(testbed, service), text)
    return text


def service_endpoint(testbed: Testbed, service: dict[str, Any]) -> str:
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    slices = json.loads(
        kubectl(
            testbed,
            "get",
            "endpointslices",
            "-n",
            namespace,
            "-l",
            f"kubernetes.io/service-name={name}",
            "-o",
            "json",
        )
    )["items"]
    target_ports = {p.get("name", ""): p["port"] for s in slices for p in s.get("ports") or []}
    for port in service["spec"]["ports"]:
        target = target_ports.get(port.get("name", ""))
        if target != port["port"]:
            raise ValueError(
                f"Service {namespace}/{name} port {port.get('name')} is {port['port']} but its endpoints "
                f"listen on {target}: a stand-in resolves names, not ports"
            )
    ready = [
        address
        for endpoint_slice in slices
        for endpoint in endpoint_slice.get("endpoints") or []
        if (endpoint.get("conditions") or {}).get("ready")
        for address in endpoint["addresses"]
    ]
    if not ready:
        raise AssertionError(f"Service {namespace}/{name} has no ready endpoint")
    return str(ready[0])


def run_to_completion(
    testbed: Testbed, pod: dict[str, Any], *, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the only container of a run-once pod (restartPolicy Never) to its end, then report its
    exit the way a kubelet does: container terminated, pod Succeeded or Failed."""
    spec = container(pod)
    namespace = pod["metadata"]["namespace"]
    argv = [resolve_service_names(testbed, namespace, arg) for arg in container_argv(pod, spec)]
    started = _now()
    result = subprocess.run(
        argv,
        env=process_environment(pod, spec, testbed.kubeconfig),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    report_termination(testbed, pod, spec, exit_code=result.returncode, started=started)
    return result


def report_termination(
    testbed: Testbed, pod: dict[str, Any], spec: dict[str, Any], *, exit_code: int, started: str
) -> None:
    now = _now()
    conditions = [
        {**condition, "status": "False", "reason": "PodCompleted", "lastTransitionTime": now}
        if condition["type"] in ("Ready", "ContainersReady")
        else condition
        for condition in pod["status"].get("conditions") or []
    ]
    terminated = {
        "exitCode": exit_code,
        "reason": "Completed" if exit_code == 0 else "Error",
        "startedAt": started,
        "finishedAt": now,
    }
    status = {
        "phase": "Succeeded" if exit_code == 0 else "Failed",
        "conditions": conditions,
        "containerStatuses": [
            {
                "name": spec["name"],
                "image": spec["image"],
                "imageID": "",
                "ready": False,
                "started": False,
                "restartCount": 0,
                "state": {"terminated": terminated},
            }
        ],
    }
    kubectl(
        testbed,
        "patch",
        "pod",
        pod["metadata"]["name"],
        "-n",
        pod["metadata"]["namespace"],
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
