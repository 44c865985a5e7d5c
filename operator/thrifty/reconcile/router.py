"""The one reconcile of an InferenceRouter.

Read the router and the InferenceModels its tiers name, render router.json and the router's
children, server-side apply them, write status. A spec that cannot be carried out (a tier names
a model that does not exist, the name is taken by another object's Deployment) becomes
Degraded=True and the running router keeps its last good configuration: nothing is applied.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from thrifty.api import (
    API_VERSION,
    KIND,
    ROUTER_KIND,
    InferenceModel,
    InferenceRouter,
    describe_validation_error,
)
from thrifty.k8s import objects
from thrifty.k8s.endpoints import ready_addresses
from thrifty.reconcile.router_status import TierObservation, router_status, with_traffic_shares
from thrifty.reconcile.status import Problem
from thrifty.reconcile.telemetry import RECONCILES, record_router_tiers
from thrifty.reconcile.write_status import on_fresh_reads, write_status
from thrifty.render import (
    DEFAULT_ROUTER_CLUSTER_ROLE,
    DEFAULT_ROUTER_IMAGE,
    desired_router_children,
    model_backend,
    router_config,
    router_endpoint,
)

log = logging.getLogger(__name__)

_locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)


@dataclass(frozen=True)
class RouterSettings:
    """How this installation runs routers (the chart sets both through the operator's env)."""

    image: str = DEFAULT_ROUTER_IMAGE
    cluster_role: str = DEFAULT_ROUTER_CLUSTER_ROLE


def routers_of_model(api: client.ApiClient, namespace: str, model: str) -> list[dict[str, Any]]:
    """The InferenceRouters in a namespace that name the model in a tier (raw bodies)."""
    routers = objects.list_objects(api, API_VERSION, ROUTER_KIND, namespace=namespace)
    return [
        body
        for body in routers
        if any(tier.get("model") == model for tier in (body.get("spec") or {}).get("tiers") or ())
    ]


def reconcile_router_by_name(
    api: client.ApiClient, namespace: str, name: str, settings: RouterSettings
) -> None:
    body = objects.read(api, API_VERSION, ROUTER_KIND, name, namespace=namespace)
    if body is not None and not body["metadata"].get("deletionTimestamp"):
        reconcile_router(api, body, settings)


def reconcile_router(api: client.ApiClient, body: dict[str, Any], settings: RouterSettings) -> dict[str, Any]:
    """Bring one InferenceRouter's children and status in line with its spec; returns the status."""
    metadata = body["metadata"]
    with _locks[(metadata["namespace"], metadata["name"])]:
        try:
            return on_fresh_reads(api, body, lambda current: _reconcile(api, current, settings)) or {}
        except Exception:  # counted for the dashboards' error ratio; the caller logs and retries
            RECONCILES.labels(kind=ROUTER_KIND, result="error").inc()
            raise


def _tier_models(
    api: client.ApiClient, router: InferenceRouter
) -> tuple[dict[str, InferenceModel], Problem | None]:
    models: dict[str, InferenceModel] = {}
    for index, tier in enumerate(router.spec.tiers):
        body = objects.read(api, API_VERSION, KIND, tier.model, namespace=router.namespace)
        where = f"spec.tiers[{index}].model"
        if body is None:
            return models, Problem(
                "ModelNotFound",
                f"{where}: no InferenceModel {tier.model!r} in namespace {router.namespace!r} "
                f"(tier {tier.name!r}); create it or name an existing one",
            )
        try:
            models[tier.model] = InferenceModel.model_validate(body)
        except ValidationError:
            return models, Problem(
                "ModelInvalid",
                f"{where}: InferenceModel {tier.model!r} (tier {tier.name!r}) has an invalid spec; "
                f"see `kubectl -n {router.namespace} describe im {tier.model}`",
            )
    return models, None


def _name_taken(router: InferenceRouter, deployment: dict[str, Any] | None) -> Problem | None:
    """A Deployment of this name that another owner controls (say an InferenceModel of the same
    name) is never taken over."""
    if deployment is None:
        return None
    owners = deployment["metadata"].get("ownerReferences") or []
    controller = next((o for o in owners if o.get("controller")), None)
    if controller is not None and controller.get("uid") == router.metadata.get("uid"):
        return None
    owner = f"{controller.get('kind')} {controller.get('name')!r}" if controller else "no Thrifty router"
    return Problem(
        "NameConflict",
        f"metadata.name: Deployment {router.namespace}/{router.name} already exists and belongs to "
        f"{owner}; give the router another name",
    )


def _apply(api: client.ApiClient, child: dict[str, Any]) -> dict[str, Any]:
    try:
        return objects.server_side_apply(api, child)
    except ApiException as error:
        # A RoleBinding's roleRef cannot change: after the router ClusterRole was renamed (a
        # reinstall under another release name), the binding is replaced instead.
        if child["kind"] != "RoleBinding" or error.status != 422:
            raise
    log.info(
        "replacing RoleBinding %s/%s: its roleRef changed",
        child["metadata"]["namespace"],
        child["metadata"]["name"],
    )
    objects.delete(api, child)
    return objects.server_side_apply(api, child)


def _model_cost(model: InferenceModel | None) -> dict[str, Any] | None:
    cost = model.status.cost if model is not None and model.status is not None else None
    return cost.model_dump(by_alias=True, exclude_none=True, mode="json") if cost is not None else None


def _ready_endpoints(api: client.ApiClient, namespace: str) -> dict[str, tuple[str, ...]]:
    slices = objects.list_objects(api, "discovery.k8s.io/v1", "EndpointSlice", namespace=namespace)
    return ready_addresses(slices)


def _reconcile(api: client.ApiClient, body: dict[str, Any], settings: RouterSettings) -> dict[str, Any]:
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    deployment = objects.read(api, "apps/v1", "Deployment", name, namespace=namespace)
    problem: Problem | None = None
    tiers: list[TierObservation] | None = None
    endpoint: str | None = None
    children: list[dict[str, Any]] = []
    try:
        router = InferenceRouter.model_validate(body)
    except ValidationError as error:
        problem = Problem("InvalidSpec", describe_validation_error(error))
    else:
        endpoint = router_endpoint(router)
        models, problem = _tier_models(api, router)
        problem = problem or _name_taken(router, deployment)
        config = None
        if problem is None:
            config = router_config(router, {name: model_backend(model) for name, model in models.items()})
            children = desired_router_children(
                router, config, image=settings.image, cluster_role=settings.cluster_role
            )
        ready = _ready_endpoints(api, namespace)
        tiers = [
            TierObservation(
                name=tier.name,
                model=tier.model,
                ready_endpoints=len(ready.get(tier.model, ())),
                cap=config.cap(index) if config is not None else None,
                cost=_model_cost(models.get(tier.model)),
            )
            for index, tier in enumerate(router.spec.tiers)
        ]
        record_router_tiers(
            namespace=namespace, router=name, tiers=[(t.name, t.model) for t in router.spec.tiers]
        )

    if problem is None:
        for child in children:
            applied = _apply(api, child)
            if child["kind"] == "Deployment":
                deployment = applied
        RECONCILES.labels(kind=ROUTER_KIND, result="success").inc()
    else:
        RECONCILES.labels(kind=ROUTER_KIND, result="degraded").inc()
        log.warning(
            "%s/%s is degraded (%s); the running router keeps its configuration",
            namespace,
            name,
            problem.reason,
        )

    status = router_status(
        body=body,
        deployment=deployment,
        tiers=tiers,
        endpoint=endpoint,
        problem=problem,
        now=datetime.datetime.now(datetime.UTC),
    )
    write_status(api, body, status)
    return status


def report_traffic(api: client.ApiClient, body: dict[str, Any], shares: dict[str, float]) -> None:
    """Write each tier's share of the router's traffic (from Prometheus) into status.tiers."""

    def attempt(current: dict[str, Any]) -> None:
        before = current.get("status") or {}
        after = with_traffic_shares(before, shares)
        if after is not before:
            objects.patch_status(api, current, after, if_unchanged=True)

    on_fresh_reads(api, body, attempt)
