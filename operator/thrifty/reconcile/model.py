"""The one reconcile of an InferenceModel: read, plan (`thrifty.reconcile.plan`, pure), apply.

Under the model's lock: read the model as it is now, its Deployment and the nodes' GPU products;
plan the children and the status; server-side apply the children; store the status. The control
loop hands its decision in (`record`) instead of writing the Deployment itself, so every write of
the model's children and status comes from here. A spec that gets past the apiserver but cannot
be carried out (an extraArgs flag the pinned vLLM does not know, a GPU product no node offers)
becomes Degraded=True and the last good children stay exactly as they are.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import threading
from collections import defaultdict
from typing import Any

from kubernetes import client

from thrifty.api import API_VERSION, KIND
from thrifty.k8s import objects
from thrifty.reconcile.cost import account_gpu_hours, price_generated_tokens
from thrifty.reconcile.plan import LoopRecord, Observed, gpu_products, plan_model
from thrifty.reconcile.telemetry import RECONCILES, report_decision
from thrifty.reconcile.write_status import on_fresh_reads, write_status

log = logging.getLogger(__name__)

# Triggers arrive from several watch streams (the model, its Deployment, the resync loop, the
# control loop) on kopf's thread pool and the loop's thread; one model is reconciled at a time.
_locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)


def reconcile_model_by_name(api: client.ApiClient, namespace: str, name: str) -> None:
    """The reconcile reads the model itself (under its lock), so the name is all it needs."""
    reconcile_model(api, {"metadata": {"namespace": namespace, "name": name}})


def reconcile_model(
    api: client.ApiClient, body: dict[str, Any], record: LoopRecord | None = None
) -> dict[str, Any]:
    """Bring one InferenceModel's children and status in line with its spec and, when the control
    loop hands one in, its decision; returns the status stored (empty when the model is gone)."""
    metadata = body["metadata"]
    key = (metadata["namespace"], metadata["name"])
    with _locks[key]:
        try:
            # Read under the lock: a body from a watch event may predate a decision the loop
            # recorded since, and planning from it would put the older replica count back.
            current = objects.read(api, API_VERSION, KIND, metadata["name"], namespace=metadata["namespace"])
            if current is None or current["metadata"].get("deletionTimestamp"):
                return {}
            return on_fresh_reads(api, current, lambda fresh: _reconcile(api, fresh, record)) or {}
        except Exception:  # counted for the dashboards' error ratio; the caller logs and retries
            RECONCILES.labels(kind=KIND, result="error").inc()
            raise


def observe(api: client.ApiClient, body: dict[str, Any]) -> Observed:
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    return Observed(
        deployment=objects.read(api, "apps/v1", "Deployment", name, namespace=namespace),
        gpu_products=gpu_products(objects.list_objects(api, "v1", "Node", namespace=None)),
        now=datetime.datetime.now(datetime.UTC),
    )


def _reconcile(api: client.ApiClient, body: dict[str, Any], record: LoopRecord | None) -> dict[str, Any]:
    observed = observe(api, body)
    plan = plan_model(body, observed, record)
    if plan.problem is None:
        deployment = observed.deployment
        for child in plan.children:
            applied = objects.server_side_apply(api, child)
            if child["kind"] == "Deployment":
                deployment = applied
        # The status describes the Deployment as it is after the apply (a new rollout included).
        plan = plan_model(body, dataclasses.replace(observed, deployment=deployment), record)
        RECONCILES.labels(kind=KIND, result="success").inc()
    else:
        RECONCILES.labels(kind=KIND, result="degraded").inc()
        log.warning(
            "%s/%s is degraded (%s); its running children are left as they are",
            body["metadata"]["namespace"],
            body["metadata"]["name"],
            plan.problem.reason,
        )
    status = plan.status
    if record is not None and plan.model is not None:
        status = price_generated_tokens(body.get("status") or {}, status, plan.model, record.window)
    status = account_gpu_hours(api, body, status)
    write_status(api, body, status)
    if record is not None and plan.model is not None:
        report_decision(api, body, plan.model, record.decision)
    return status
