"""kopf wiring only: every trigger ends in the same idempotent reconcile.

Only event handlers are used (no create/update handlers, timers or daemons), so kopf never adds a
finalizer or a last-handled annotation to a user's object: deletion stays free, and Argo CD sees
no drift that Thrifty made.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import logging
import os
from typing import Any

import kopf

from thrifty.api import GROUP, PLURAL, VERSION
from thrifty.control import ScalingPolicy
from thrifty.k8s import objects
from thrifty.k8s.client import api_client
from thrifty.reconcile.model import reconcile_model, reconcile_model_by_name
from thrifty.reconcile.scaling import control_step
from thrifty.render.labels import MANAGED_BY, MODEL_LABEL

log = logging.getLogger(__name__)

RESYNC_SECONDS = float(os.environ.get("THRIFTY_RESYNC_SECONDS", "60"))
CONTROL_SECONDS = float(os.environ.get("THRIFTY_CONTROL_SECONDS", "15"))
PROMETHEUS_URL = os.environ.get("THRIFTY_PROMETHEUS_URL", "")
SCRAPE_SECONDS = float(os.environ.get("THRIFTY_SCRAPE_INTERVAL_SECONDS", "15"))
# Compresses every duration of the control policy; <1 only on testbeds and in demos.
CONTROL_TIME_SCALE = float(os.environ.get("THRIFTY_CONTROL_TIME_SCALE", "1"))


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
    if type == "DELETED" or body.metadata.get("deletionTimestamp"):
        return  # owner references take the children away
    reconcile_model(api_client(), _plain(body))


@kopf.on.event("apps", "v1", "deployments", labels={**MANAGED_BY, MODEL_LABEL: kopf.PRESENT})
def deployment_event(type: str | None, body: kopf.Body, **_: Any) -> None:
    """A Deployment's rollout moved: refresh its model's status."""
    model = body.metadata.labels[MODEL_LABEL]
    reconcile_model_by_name(api_client(), body.metadata.namespace or "", model)


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
    for body in objects.list_objects(api, f"{GROUP}/{VERSION}", "InferenceModel", namespace=None):
        if not body["metadata"].get("deletionTimestamp"):
            reconcile_model(api, body)


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
    for body in objects.list_objects(api, f"{GROUP}/{VERSION}", "InferenceModel", namespace=None):
        if body["metadata"].get("deletionTimestamp"):
            continue
        try:
            control_step(
                api,
                windows.read,
                body,
                now=now,
                sample_interval_s=CONTROL_SECONDS,
                time_scale=CONTROL_TIME_SCALE,
            )
        except Exception:
            log.exception(
                "control step for %s/%s failed", body["metadata"]["namespace"], body["metadata"]["name"]
            )


def _plain(body: kopf.Body) -> dict[str, Any]:
    return copy.deepcopy(dict(body))
