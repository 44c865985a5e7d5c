"""Waking a model scaled to zero: the router stamps the InferenceModel's wake annotation.

The router holds the request (the tier's queue, up to spec.admission.coldStartTimeout) and asks
once per `interval_s` per model; the operator's reconcile of that model sees the stamp newer than
its last scale to zero and runs one replica. The stamp is the router's only write: one merge patch
of one annotation (the router's ClusterRole grants get and patch on inferencemodels, bound in the
router's namespace only).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable

from thrifty.api import WAKE_ANNOTATION

log = logging.getLogger(__name__)

Patch = Callable[[str, dict[str, object]], None]
"""Merge-patch the named InferenceModel (in the router's namespace) with a body."""


def wake_patch(now: datetime.datetime) -> dict[str, object]:
    stamp = now.astimezone(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"metadata": {"annotations": {WAKE_ANNOTATION: stamp}}}


class WakeRequester:
    """Asks for models to wake, at most once per `interval_s` each, off the event loop."""

    def __init__(
        self,
        patch: Patch,
        *,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._patch = patch
        self._interval_s = interval_s
        self._clock = clock
        self._asked: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0

    def request(self, model: str) -> bool:
        """Ask for `model` unless it was asked for within the interval; True when a patch goes out."""
        now = self._clock()
        last = self._asked.get(model)
        if last is not None and now - last < self._interval_s:
            return False
        self._asked[model] = now
        task = asyncio.get_running_loop().create_task(self._send(model))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _send(self, model: str) -> None:
        body = wake_patch(datetime.datetime.now(datetime.UTC))
        try:
            await asyncio.to_thread(self._patch, model, body)
        except Exception as error:  # any API failure: log it, and let the next request ask again
            self._asked.pop(model, None)
            log.warning(
                "could not ask InferenceModel %s to wake (%s): the router's service account needs get and "
                "patch on thrifty.dev inferencemodels in its namespace",
                model,
                error,
            )
            return
        self.sent += 1
        log.info("asked InferenceModel %s to wake from zero", model)


def kubernetes_patch(namespace: str) -> Patch:
    """A `Patch` through the in-cluster (or kubeconfig) API client."""
    from kubernetes import client

    from thrifty.api import GROUP, PLURAL, VERSION
    from thrifty.k8s.client import api_client

    api = client.CustomObjectsApi(api_client())

    def patch(model: str, body: dict[str, object]) -> None:
        api.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, model, body)

    return patch
