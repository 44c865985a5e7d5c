"""Kubernetes Events on Thrifty's objects: what `kubectl describe` shows a person."""

from __future__ import annotations

import datetime
import uuid
from typing import Any, Literal

from kubernetes import client

from thrifty.k8s.objects import create

COMPONENT = "thrifty-operator"


def record_event(
    api: client.ApiClient,
    obj: dict[str, Any],
    *,
    reason: str,
    message: str,
    event_type: Literal["Normal", "Warning"] = "Normal",
) -> None:
    """Create a core/v1 Event about ``obj``. Messages never carry secrets: callers pass names only."""
    metadata = obj["metadata"]
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{metadata['name']}.{uuid.uuid4().hex[:12]}",
            "namespace": metadata["namespace"],
        },
        "involvedObject": {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "uid": metadata.get("uid"),
            "resourceVersion": metadata.get("resourceVersion"),
        },
        "reason": reason,
        "message": message[:1024],
        "type": event_type,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    create(api, event)
