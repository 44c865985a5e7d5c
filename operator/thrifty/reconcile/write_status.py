"""Store a computed status, and tell `kubectl describe` what changed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from kubernetes import client

from thrifty.k8s import objects
from thrifty.k8s.events import record_event
from thrifty.reconcile.status import condition_transitions

T = TypeVar("T")

ATTEMPTS = 3


def on_fresh_reads(
    api: client.ApiClient, body: dict[str, Any], attempt: Callable[[dict[str, Any]], T]
) -> T | None:
    """``attempt(body)``; when its guarded status write finds that the object changed since
    ``body`` was read (the reconcile and the control loop both write a model's status), read it
    again and redo the attempt on what is there now. None when the object has gone."""
    metadata = body["metadata"]
    for _ in range(ATTEMPTS - 1):
        try:
            return attempt(body)
        except objects.StaleObjectError:
            fresh = objects.read(
                api, body["apiVersion"], body["kind"], metadata["name"], namespace=metadata["namespace"]
            )
            if fresh is None:
                return None
            body = fresh
    return attempt(body)


def write_status(api: client.ApiClient, body: dict[str, Any], status: dict[str, Any]) -> None:
    """Patch status only when it changed (a converged object costs no write), guarded by the
    resourceVersion ``status`` was computed from, and record an Event for each condition whose
    status or reason changed: a Warning when it turns Degraded."""
    before = body.get("status") or {}
    if status != before:
        objects.patch_status(api, body, status, if_unchanged=True)
    for condition in condition_transitions(before, status):
        warning = condition["type"] == "Degraded" and condition["status"] == "True"
        record_event(
            api,
            body,
            reason=condition["reason"],
            message=f"{condition['type']}={condition['status']}: {condition['message']}",
            event_type="Warning" if warning else "Normal",
        )
