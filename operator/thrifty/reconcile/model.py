"""The one reconcile of an InferenceModel.

Read the object, compute its children, server-side apply them, write status. A spec that gets past
the apiserver but cannot be carried out (an extraArgs flag the pinned vLLM does not know, a GPU
product no node offers) becomes Degraded=True and the last good children stay exactly as they are.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections import defaultdict
from typing import Any

from kubernetes import client
from pydantic import ValidationError

from thrifty.api import API_VERSION, GPU_PRODUCT_LABEL, KIND, InferenceModel, describe_validation_error
from thrifty.k8s import objects
from thrifty.reconcile.cost import account_gpu_hours
from thrifty.reconcile.status import Problem, engine_max_num_seqs, model_status
from thrifty.reconcile.telemetry import RECONCILES
from thrifty.reconcile.write_status import on_fresh_reads, write_status
from thrifty.render import desired_children, model_selector
from thrifty.vllm_args import InvalidEngineArgs

log = logging.getLogger(__name__)

# Triggers arrive from several watch streams (the model, its Deployment, the resync loop) on
# kopf's thread pool; one model is reconciled by one thread at a time.
_locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)


def reconcile_model_by_name(api: client.ApiClient, namespace: str, name: str) -> None:
    body = objects.read(api, API_VERSION, KIND, name, namespace=namespace)
    if body is not None and not body["metadata"].get("deletionTimestamp"):
        reconcile_model(api, body)


def _current_replicas(model: InferenceModel, deployment: dict[str, Any] | None) -> int | None:
    """With scaling on, the control loop owns the replica count: keep what the Deployment runs,
    within the bounds. Without it, None lets the renderer use spec.replicas."""
    scaling = model.spec.scaling
    if scaling is None or not scaling.enabled:
        return None
    running = (deployment or {}).get("spec", {}).get("replicas")
    if running is None:
        return scaling.replicas.min
    return max(scaling.replicas.min, min(scaling.replicas.max, int(running)))


def _current_max_num_seqs(model: InferenceModel, deployment: dict[str, Any] | None) -> int | None:
    """With tuneMaxNumSeqs on, the control loop owns the engine flag and spec.batching.maxNumSeqs is
    only its starting value: keep what the Deployment runs, within the tuning range."""
    scaling = model.spec.scaling
    tune = scaling.tune_max_num_seqs if scaling is not None and scaling.enabled else None
    running = engine_max_num_seqs(deployment)
    if tune is None or not tune.enabled or running is None:
        return None
    return max(tune.min, min(tune.max, running))


def _missing_gpu_product(api: client.ApiClient, model: InferenceModel) -> Problem | None:
    nodes = objects.list_objects(api, "v1", "Node", namespace=None)
    offered = sorted({n["metadata"].get("labels", {}).get(GPU_PRODUCT_LABEL, "") for n in nodes} - {""})
    if model.gpu_product in offered:
        return None
    return Problem(
        "NoMatchingNodes",
        f"spec.resources.gpu.product: no node offers {model.gpu_product!r} (label {GPU_PRODUCT_LABEL}); "
        f"products on this cluster: {', '.join(offered) or 'none'}",
    )


def reconcile_model(api: client.ApiClient, body: dict[str, Any]) -> dict[str, Any]:
    """Bring one InferenceModel's children and status in line with its spec; returns the status."""
    metadata = body["metadata"]
    key = (metadata["namespace"], metadata["name"])
    with _locks[key]:
        try:
            return on_fresh_reads(api, body, lambda current: _reconcile(api, current)) or {}
        except Exception:  # counted for the dashboards' error ratio; the caller logs and retries
            RECONCILES.labels(kind=KIND, result="error").inc()
            raise


def _reconcile(api: client.ApiClient, body: dict[str, Any]) -> dict[str, Any]:
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    deployment = objects.read(api, "apps/v1", "Deployment", name, namespace=namespace)
    problem: Problem | None = None
    selector = ""
    try:
        model = InferenceModel.model_validate(body)
        selector = ",".join(f"{k}={v}" for k, v in model_selector(model).items())
        children = desired_children(
            model,
            replicas=_current_replicas(model, deployment),
            max_num_seqs=_current_max_num_seqs(model, deployment),
        )
        problem = _missing_gpu_product(api, model)
    except ValidationError as error:
        problem = Problem("InvalidSpec", describe_validation_error(error))
    except InvalidEngineArgs as error:
        problem = Problem("InvalidEngineArgs", f"spec.engine.extraArgs: {error}")

    if problem is None:
        for child in children:
            applied = objects.server_side_apply(api, child)
            if child["kind"] == "Deployment":
                deployment = applied
        RECONCILES.labels(kind=KIND, result="success").inc()
    else:
        RECONCILES.labels(kind=KIND, result="degraded").inc()
        log.warning(
            "%s/%s is degraded (%s); its running children are left as they are",
            namespace,
            name,
            problem.reason,
        )

    before = body.get("status") or {}
    status = model_status(
        body=body,
        deployment=deployment,
        selector=selector or before.get("selector", ""),
        problem=problem,
        now=datetime.datetime.now(datetime.UTC),
    )
    status = account_gpu_hours(api, body, status)
    write_status(api, body, status)
    return status
