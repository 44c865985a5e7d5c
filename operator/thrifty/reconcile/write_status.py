"""Store a computed status, and tell `kubectl describe` what changed."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from thrifty.k8s import objects
from thrifty.k8s.events import record_event
from thrifty.reconcile.status import condition_transitions


def write_status(api: client.ApiClient, body: dict[str, Any], status: dict[str, Any]) -> None:
    """Patch status only when it changed (a converged object costs no write), and record an Event
    for each condition whose status or reason changed: a Warning when it turns Degraded."""
    before = body.get("status") or {}
    if status != before:
        objects.patch_status(api, body, status)
    for condition in condition_transitions(before, status):
        warning = condition["type"] == "Degraded" and condition["status"] == "True"
        record_event(
            api,
            body,
            reason=condition["reason"],
            message=f"{condition['type']}={condition['status']}: {condition['message']}",
            event_type="Warning" if warning else "Normal",
        )
