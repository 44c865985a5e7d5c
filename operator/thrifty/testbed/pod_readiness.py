"""Readiness of a simulated pod, written the way a kubelet reports its readiness probe.

kwok starts the pods that a testbed launcher serves (vLLM twins, routers, the chart's operator)
Running but not Ready; the launcher calls :func:`set_pod_ready` when the process behind the pod
passes its check, and again with ``ready=False`` when that process dies, so the EndpointSlice
controller adds or drops the pod's address exactly as it would on a real node.
"""

from __future__ import annotations

import datetime
from typing import Any

from kubernetes import client

from thrifty.k8s import objects

_READINESS_CONDITIONS = ("Ready", "ContainersReady")


def readiness_status(
    status: dict[str, Any], *, ready: bool, now: str, restart_count: int | None = None
) -> dict[str, Any]:
    """The status patch that turns ``status`` Ready or not Ready.

    A condition keeps its lastTransitionTime unless its status really changes, as the kubelet
    does; ``restart_count`` (when given) is written on every container, for a launcher that
    restarts the process behind a pod.
    """
    wanted = "True" if ready else "False"
    conditions = [dict(condition) for condition in status.get("conditions", [])]
    for condition in conditions:
        if condition["type"] not in _READINESS_CONDITIONS:
            continue
        if condition.get("status") != wanted:
            condition.update(status=wanted, lastTransitionTime=now)
        if ready:
            condition.pop("reason", None)
        else:
            condition["reason"] = "ContainersNotReady"
    containers = [dict(container) for container in status.get("containerStatuses", [])]
    for container in containers:
        container["ready"] = ready
        if restart_count is not None:
            container["restartCount"] = restart_count
    return {"conditions": conditions, "containerStatuses": containers}


def set_pod_ready(
    api: client.ApiClient,
    *,
    namespace: str,
    name: str,
    uid: str,
    ready: bool,
    restart_count: int | None = None,
) -> bool:
    """Patch pod ``namespace/name`` Ready (or not). False when the pod is gone or is another pod of
    the same name (a new ``uid``): a launcher must never mark a pod it does not serve."""
    pod = objects.read(api, "v1", "Pod", name, namespace=namespace)
    if pod is None or pod["metadata"]["uid"] != uid:
        return False
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    objects.patch_status(
        api, pod, readiness_status(pod["status"], ready=ready, now=now, restart_count=restart_count)
    )
    return True
