"""Ready endpoints of Services, from a list-and-watch of their EndpointSlices.

The router's only Kubernetes I/O. One watch covers every EndpointSlice in a namespace that
belongs to a Service (label `kubernetes.io/service-name`), so the router's tiers can change
without restarting it; each change is folded into "service -> ready addresses" and handed to a
callback. The watch runs in a daemon thread (the Kubernetes client is synchronous); the callback
is called from that thread, so an asyncio caller passes one that hops onto its loop.

    watcher = EndpointSliceWatcher(api_client(), "models", on_change=publish)
    watcher.start()
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
_WATCH_TIMEOUT_S = 300
_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0)

ReadyAddresses = dict[str, tuple[str, ...]]
"""Service name -> sorted `host:port` of its ready endpoints."""


def _address(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _slice_port(endpoint_slice: Mapping[str, Any], default_port: int | None) -> int | None:
    ports = [port for port in endpoint_slice.get("ports") or () if isinstance(port.get("port"), int)]
    if not ports:
        return default_port
    named = next((port for port in ports if port.get("name") == "http"), None)
    return int((named or ports[0])["port"])


def ready_addresses(
    slices: Iterable[Mapping[str, Any]], *, default_port: int | None = None
) -> ReadyAddresses:
    """Ready endpoints per Service from EndpointSlice objects (JSON form, camelCase keys).

    An endpoint counts when its `conditions.ready` is true, or unset (the API asks consumers to
    read an unknown state as ready); terminating and not-ready endpoints never count. The port is
    the slice's port named `http`, else its first, else `default_port` (a slice without ports
    and no default contributes nothing).
    """
    found: dict[str, set[str]] = {}
    for endpoint_slice in slices:
        labels = (endpoint_slice.get("metadata") or {}).get("labels") or {}
        service = labels.get(SERVICE_NAME_LABEL)
        if not service:
            continue
        addresses = found.setdefault(service, set())
        port = _slice_port(endpoint_slice, default_port)
        if port is None:
            continue
        for endpoint in endpoint_slice.get("endpoints") or ():
            conditions = endpoint.get("conditions") or {}
            if conditions.get("ready") is False or conditions.get("terminating") is True:
                continue
            for ip in (endpoint.get("addresses") or ())[:1]:
                addresses.add(_address(ip, port))
    return {service: tuple(sorted(addresses)) for service, addresses in found.items()}


class EndpointSliceWatcher:
    """List, then watch, the EndpointSlices of one namespace; publish ready addresses on change."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        *,
        on_change: Callable[[ReadyAddresses], None],
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        # The client's models are only partly typed; these objects are handled as JSON dicts.
        self._discovery: Any = client.DiscoveryV1Api(api)
        self._api: Any = api
        self._namespace = namespace
        self._on_change = on_change
        self._on_error = on_error
        self._stopping = threading.Event()
        self._watch: Any = None
        self._thread = threading.Thread(target=self._run, name=f"endpointslices-{namespace}", daemon=True)
        self._slices: dict[str, dict[str, Any]] = {}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._watch is not None:
            self._watch.stop()

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                version = self._list()
                failures = 0
                self._follow(version)
            except Exception as error:  # the watch must outlive any one failure
                if self._stopping.is_set():
                    return
                if not (isinstance(error, ApiException) and error.status == 410):
                    log.warning("EndpointSlices of %s: %s; retrying", self._namespace, error)
                    if self._on_error is not None:
                        self._on_error(error)
                    self._stopping.wait(_BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)])
                    failures += 1

    def _list(self) -> str:
        listed: Any = self._discovery.list_namespaced_endpoint_slice(
            self._namespace, label_selector=SERVICE_NAME_LABEL
        )
        self._slices = {
            item.metadata.name: self._api.sanitize_for_serialization(item) for item in listed.items or ()
        }
        self._publish()
        return str(listed.metadata.resource_version)

    def _follow(self, version: str) -> None:
        self._watch = watch.Watch()  # type: ignore[no-untyped-call]
        stream = self._watch.stream(
            self._discovery.list_namespaced_endpoint_slice,
            self._namespace,
            label_selector=SERVICE_NAME_LABEL,
            resource_version=version,
            timeout_seconds=_WATCH_TIMEOUT_S,
        )
        for event in stream:
            if self._stopping.is_set():
                return
            kind = event["type"]
            if kind == "ERROR":
                raise ApiException(status=int(event["raw_object"].get("code", 500)), reason="watch error")
            item = self._api.sanitize_for_serialization(event["object"])
            name = item["metadata"]["name"]
            if kind == "DELETED":
                self._slices.pop(name, None)
            elif kind in ("ADDED", "MODIFIED"):
                self._slices[name] = item
            else:
                continue
            self._publish()

    def _publish(self) -> None:
        self._on_change(ready_addresses(self._slices.values()))
