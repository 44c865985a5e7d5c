"""kopf wiring only: every trigger ends in the same idempotent reconcile.

Only event handlers are used (no create/update handlers, timers or daemons), so kopf never adds a
finalizer or a last-handled annotation to a user's object: deletion stays free, and Argo CD sees
no drift that Thrifty made.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import fnmatch
import logging
import os
from collections import defaultdict
from typing import Any

import kopf

from thrifty.api import GROUP, KIND, PLURAL, ROUTER_KIND, ROUTER_PLURAL, VERSION
from thrifty.control import ScalingPolicy
from thrifty.k8s import objects
from thrifty.k8s.client import api_client
from thrifty.reconcile.cost import forget_model
from thrifty.reconcile.model import reconcile_model, reconcile_model_by_name
from thrifty.reconcile.router import (
    RouterSettings,
    reconcile_router,
    reconcile_router_by_name,
    report_traffic,
    routers_of_model,
)
from thrifty.reconcile.scaling import control_step
from thrifty.reconcile.telemetry import forget_router_tiers
from thrifty.render import DEFAULT_ROUTER_CLUSTER_ROLE, DEFAULT_ROUTER_IMAGE
from thrifty.render.labels import MANAGED_BY, MODEL_LABEL, ROUTER_LABEL

log = logging.getLogger(__name__)

RESYNC_SECONDS = float(os.environ.get("THRIFTY_RESYNC_SECONDS", "60"))
CONTROL_SECONDS = float(os.environ.get("THRIFTY_CONTROL_SECONDS", "15"))
PROMETHEUS_URL = os.environ.get("THRIFTY_PROMETHEUS_URL", "")
SCRAPE_SECONDS = float(os.environ.get("THRIFTY_SCRAPE_INTERVAL_SECONDS", "15"))
# Compresses every duration of the control policy; <1 only on testbeds and in demos.
CONTROL_TIME_SCALE = float(os.environ.get("THRIFTY_CONTROL_TIME_SCALE", "1"))
ROUTERS = RouterSettings(
    image=os.environ.get("THRIFTY_ROUTER_IMAGE") or DEFAULT_ROUTER_IMAGE,
    cluster_role=os.environ.get("THRIFTY_ROUTER_CLUSTER_ROLE") or DEFAULT_ROUTER_CLUSTER_ROLE,
)
# The window over which each tier's share of a router's traffic is reported in its status.
TRAFFIC_SHARE_SECONDS = 300.0


_namespaces: tuple[str, ...] = ()


def watch_namespaces(patterns: list[str]) -> None:
    """The operator's --namespace patterns: kopf watches only those, and so do the resync and
    control loops, which list objects themselves."""
    global _namespaces
    _namespaces = tuple(patterns)


def watched(namespace: str) -> bool:
    """kopf's rule: no patterns means every namespace; `!pattern` excludes; otherwise a name must
    match one of the patterns."""
    excluded = [p[1:] for p in _namespaces if p.startswith("!")]
    included = [p for p in _namespaces if not p.startswith("!")]
    if any(fnmatch.fnmatchcase(namespace, p) for p in excluded):
        return False
    return not included or any(fnmatch.fnmatchcase(namespace, p) for p in included)


def _live(api: Any, kind: str) -> list[dict[str, Any]]:
    """Every object of one of our kinds in the watched namespaces, not being deleted."""
    return [
        body
        for body in objects.list_objects(api, f"{GROUP}/{VERSION}", kind, namespace=None)
        if watched(body["metadata"]["namespace"]) and not body["metadata"].get("deletionTimestamp")
    ]


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Thrifty records its own Events; kopf's per-handler log Events would only add noise.
    settings.posting.enabled = False
    settings.watching.server_timeout = 300
    settings.execution.max_workers = 8
    memo["resync"] = asyncio.create_task(_resync_forever())
    if PROMETHEUS_URL:
        memo["control"] = asyncio.create_task(_control_forever(PROMETHEUS_URL))
    else:
        log.warning("THRIFTY_PROMETHEUS_URL is unset: the control loop is off, replicas stay as set")


@kopf.on.cleanup()
async def stop_resync(memo: kopf.Memo, **_: Any) -> None:
    for name in ("resync", "control"):
        task = memo.get(name)
        if isinstance(task, asyncio.Task):
            task.cancel()


@kopf.on.event(GROUP, VERSION, PLURAL)
def model_event(type: str | None, body: kopf.Body, **_: Any) -> None:
    if type == "DELETED":
        forget_model(body.metadata.namespace or "", body.metadata.name or "")
        return  # owner references take the children away
    if body.metadata.get("deletionTimestamp"):
        return
    api = api_client()
    reconcile_model(api, _plain(body))
    _reconcile_routers_of(api, body.metadata.namespace or "", body.metadata.name or "")


@kopf.on.event(GROUP, VERSION, ROUTER_PLURAL)
def router_event(type: str | None, body: kopf.Body, **_: Any) -> None:
    if type == "DELETED":
        forget_router_tiers(namespace=body.metadata.namespace or "", router=body.metadata.name or "")
        return
    if body.metadata.get("deletionTimestamp"):
        return
    reconcile_router(api_client(), _plain(body), ROUTERS)


@kopf.on.event("apps", "v1", "deployments", labels={**MANAGED_BY, MODEL_LABEL: kopf.PRESENT})
def deployment_event(type: str | None, body: kopf.Body, **_: Any) -> None:
    """A model Deployment's rollout moved: refresh its model's status, and its routers' (their
    ready endpoints and caps)."""
    api = api_client()
    namespace, model = body.metadata.namespace or "", body.metadata.labels[MODEL_LABEL]
    reconcile_model_by_name(api, namespace, model)
    _reconcile_routers_of(api, namespace, model)


@kopf.on.event("apps", "v1", "deployments", labels={**MANAGED_BY, ROUTER_LABEL: kopf.PRESENT})
def router_deployment_event(type: str | None, body: kopf.Body, **_: Any) -> None:
    """A router Deployment's rollout moved: refresh its router's status."""
    router = body.metadata.labels[ROUTER_LABEL]
    reconcile_router_by_name(api_client(), body.metadata.namespace or "", router, ROUTERS)


def _reconcile_routers_of(api: Any, namespace: str, model: str) -> None:
    """A model changed (its cap, its readiness): its routers' router.json and status follow."""
    for router in routers_of_model(api, namespace, model):
        if not router["metadata"].get("deletionTimestamp"):
            reconcile_router(api, router, ROUTERS)


async def _resync_forever() -> None:
    """One operator-wide loop, in place of per-object timers (which would add finalizers)."""
    while True:
        await asyncio.sleep(RESYNC_SECONDS)
        try:
            await asyncio.to_thread(_resync_once)
        except Exception:
            log.exception("resync failed; retrying in %.0fs", RESYNC_SECONDS)


def _resync_once() -> None:
    api = api_client()
    for body in _live(api, KIND):
        reconcile_model(api, body)
    for body in _live(api, ROUTER_KIND):
        reconcile_router(api, body, ROUTERS)


async def _control_forever(prometheus_url: str) -> None:
    """The control loop: one operator-wide task that steps every model with scaling enabled."""
    from thrifty.metrics import PrometheusWindows

    windows = PrometheusWindows(
        prometheus_url,
        scrape_interval_s=SCRAPE_SECONDS,
        step_s=SCRAPE_SECONDS,
        span_s=ScalingPolicy().evidence_s * CONTROL_TIME_SCALE,
    )
    while True:
        await asyncio.sleep(CONTROL_SECONDS)
        try:
            await asyncio.to_thread(_control_once, windows)
        except Exception:
            log.exception("control loop step failed; retrying in %.0fs", CONTROL_SECONDS)


def _control_once(windows: Any) -> None:
    api = api_client()
    now = datetime.datetime.now(datetime.UTC)
    routers = _live(api, ROUTER_KIND)
    # A model behind a router gets its per-replica cap enforced there, and what waits in the
    # router's queue for it is demand the engines never see: the policy counts on both.
    routed: defaultdict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for body in routers:
        for tier in (body.get("spec") or {}).get("tiers") or ():
            key = (body["metadata"]["namespace"], str(tier.get("model")))
            routed[key].append((body["metadata"]["name"], str(tier.get("name"))))
    for body in _live(api, KIND):
        try:
            control_step(
                api,
                windows.read,
                body,
                now=now,
                router_tiers=routed.get((body["metadata"]["namespace"], body["metadata"]["name"]), ()),
                sample_interval_s=CONTROL_SECONDS,
                time_scale=CONTROL_TIME_SCALE,
            )
        except Exception:
            log.exception(
                "control step for %s/%s failed", body["metadata"]["namespace"], body["metadata"]["name"]
            )
    for body in routers:
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        shares = windows.metrics.tier_shares(namespace=namespace, router=name, span_s=TRAFFIC_SHARE_SECONDS)
        if shares:
            report_traffic(api, body, shares)


def _plain(body: kopf.Body) -> dict[str, Any]:
    return copy.deepcopy(dict(body))
