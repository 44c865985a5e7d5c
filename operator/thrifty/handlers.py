"""kopf wiring only: every trigger ends in the same idempotent reconcile.

Only event handlers are used (no create/update handlers, timers or daemons), so kopf never adds a
finalizer or a last-handled annotation to a user's object: deletion stays free, and Argo CD sees
no drift that Thrifty made.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
from typing import Any

import kopf

from thrifty.api import GROUP, PLURAL, VERSION
from thrifty.k8s import objects
from thrifty.k8s.client import api_client
from thrifty.reconcile.model import reconcile_model, reconcile_model_by_name
from thrifty.render.labels import MANAGED_BY, MODEL_LABEL

log = logging.getLogger(__name__)

RESYNC_SECONDS = float(os.environ.get("THRIFTY_RESYNC_SECONDS", "60"))


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Thrifty records its own Events; kopf's per-handler log Events would only add noise.
    settings.posting.enabled = False
    settings.watching.server_timeout = 300
    settings.execution.max_workers = 8
    memo["resync"] = asyncio.create_task(_resync_forever())


@kopf.on.cleanup()
async def stop_resync(memo: kopf.Memo, **_: Any) -> None:
    task = memo.get("resync")
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


def _plain(body: kopf.Body) -> dict[str, Any]:
    return copy.deepcopy(dict(body))
