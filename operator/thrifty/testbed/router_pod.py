"""How the testbed runs a router pod's container as a local process: read the pod, plan the process.

A router pod (what the InferenceRouter reconcile renders) has one container named `router` that
runs `thrifty router --config <file in a configMap volume> --port N`, with a readiness probe on
GET /health. :func:`router_container` reads that out of the pod and refuses, naming the field,
whatever the testbed cannot run; :func:`command_line` turns it into the local command, bound to
the pod's own IP.

The one liberty the testbed takes with the pod: the process does not run in the pod's
filesystem, so every path that points into a mounted ConfigMap (the `--config` argument, and
`classifierPath` inside router.json) is rewritten to the copy under the pod's root directory
(:mod:`thrifty.testbed.pod_files`). Everything else is the pod's own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from thrifty.router.main import DEFAULT_CONFIG
from thrifty.testbed.pod_files import (
    ConfigMapMount,
    PodSpecError,
    config_map_mounts,
    rehome,
    rehome_arguments,
)

ROUTER_SELECTOR = "thrifty.dev/role=router"
CONTAINER_NAME = "router"
DEFAULT_PORT = 8000

# The pod fields a container may read through env valueFrom.fieldRef that the testbed can fill.
_FIELD_REFS = {
    "metadata.name": lambda pod: pod["metadata"]["name"],
    "metadata.namespace": lambda pod: pod["metadata"]["namespace"],
    "metadata.uid": lambda pod: pod["metadata"]["uid"],
    "spec.nodeName": lambda pod: pod["spec"].get("nodeName", ""),
    "spec.serviceAccountName": lambda pod: pod["spec"].get("serviceAccountName", "default"),
    "status.podIP": lambda pod: pod["status"].get("podIP", ""),
}


@dataclass(frozen=True)
class HealthCheck:
    """The container's HTTP readiness probe."""

    path: str
    port: int
    period_s: float = 10.0
    """Seconds between probes once the pod is Ready (the probe's periodSeconds)."""
    failure_threshold: int = 3
    """Failed probes in a row that turn a Ready pod not Ready (the probe's failureThreshold)."""


@dataclass(frozen=True)
class RouterContainer:
    """Everything needed to run one router pod's container here."""

    args: tuple[str, ...]
    """The container's arguments after `thrifty`, as the pod gives them (`router`, `--config`, ...)."""
    port: int
    """The port `thrifty router` listens on (its `--port`)."""
    config_path: PurePosixPath
    """router.json as the container sees it (its `--config`)."""
    mounts: tuple[ConfigMapMount, ...]
    """The container's configMap volumes."""
    env: tuple[tuple[str, str], ...]
    """The container's environment, with fieldRef values filled from the pod."""
    service_account: str
    """The pod's ServiceAccount: the router acts as it towards the apiserver."""
    readiness: HealthCheck | None
    """None when the container has no readiness probe: Ready as soon as the process runs."""

    @property
    def mount_paths(self) -> tuple[PurePosixPath, ...]:
        return tuple(mount.mount_path for mount in self.mounts)


def router_container(pod: Mapping[str, Any]) -> RouterContainer:
    """Read the `router` container of a router pod; :class:`PodSpecError` says what the testbed
    cannot run, and where."""
    spec = pod["spec"]
    containers = {container["name"]: container for container in spec.get("containers") or ()}
    container = containers.get(CONTAINER_NAME)
    if container is None:
        raise PodSpecError(
            f"spec.containers: no container named {CONTAINER_NAME!r} (found {sorted(containers)}); "
            "a router pod runs `thrifty router` in a container of that name"
        )
    where = f"spec.containers[{CONTAINER_NAME}]"
    if list(container.get("command") or ()) != ["thrifty"]:
        raise PodSpecError(
            f"{where}.command: the testbed runs router pods with command [thrifty]; got "
            f"{container.get('command')!r}"
        )
    args = tuple(str(arg) for arg in container.get("args") or ())
    if args[:1] != ("router",):
        raise PodSpecError(f"{where}.args: must start with `router`; got {list(args)!r}")
    port_value = _flag_value(args, "--port")
    try:
        port = int(port_value) if port_value is not None else DEFAULT_PORT
    except ValueError:
        raise PodSpecError(f"{where}.args: --port {port_value!r} is not a number") from None
    config = _flag_value(args, "--config")
    return RouterContainer(
        args=args,
        port=port,
        config_path=PurePosixPath(config) if config is not None else PurePosixPath(DEFAULT_CONFIG),
        mounts=tuple(config_map_mounts(spec, container)),
        env=tuple(_environment(pod, container, where)),
        service_account=spec.get("serviceAccountName") or "default",
        readiness=_readiness(container, where),
    )


def command_line(container: RouterContainer, *, python: str, root: Path, host: str) -> list[str]:
    """The local command for the container: `thrifty router` on the pod's IP, with paths into the
    mounts rewritten under ``root``."""
    args = rehome_arguments(container.args, container.mount_paths, root)
    if _flag_value(container.args, "--config") is None:
        args += ["--config", rehome(str(container.config_path), container.mount_paths, root)]
    # The pod would listen on all of its own addresses; here the pod's only address is its IP,
    # and every pod shares one network namespace, so bind that IP alone (the last --host wins).
    return [python, "-m", "thrifty", *args, "--host", host]


def rehome_router_config(content: bytes, mount_paths: Iterable[PurePosixPath], root: Path) -> bytes:
    """router.json with `classifierPath` rewritten under ``root`` when it points into a mount.

    A file that is not a JSON object is passed on untouched: the router itself reports what is
    wrong with it, as it would in the pod.
    """
    try:
        document = json.loads(content)
    except ValueError:
        return content
    path = document.get("classifierPath") if isinstance(document, dict) else None
    if not isinstance(path, str):
        return content
    moved = rehome(path, mount_paths, root)
    if moved == path:
        return content
    return json.dumps({**document, "classifierPath": moved}, indent=2).encode()


def files_for_process(
    files: Mapping[PurePosixPath, bytes], container: RouterContainer, root: Path
) -> dict[PurePosixPath, bytes]:
    """The mounted files as the local process needs them: router.json rehomed, the rest as is."""
    return {
        path: rehome_router_config(content, container.mount_paths, root)
        if path == container.config_path
        else content
        for path, content in files.items()
    }


def _flag_value(args: Iterable[str], flag: str) -> str | None:
    """The value of ``flag`` (``--flag V`` or ``--flag=V``), the last one winning as in argparse."""
    found = None
    items = list(args)
    for index, arg in enumerate(items):
        if arg == flag and index + 1 < len(items):
            found = items[index + 1]
        elif arg.startswith(flag + "="):
            found = arg.partition("=")[2]
    return found


def _environment(pod: Mapping[str, Any], container: Mapping[str, Any], where: str) -> list[tuple[str, str]]:
    env = []
    for index, variable in enumerate(container.get("env") or ()):
        source = variable.get("valueFrom")
        if source is None:
            env.append((variable["name"], str(variable.get("value", ""))))
            continue
        field_path = (source.get("fieldRef") or {}).get("fieldPath")
        if field_path not in _FIELD_REFS:
            raise PodSpecError(
                f"{where}.env[{index}].valueFrom: the testbed fills only fieldRef "
                f"{', '.join(sorted(_FIELD_REFS))}; got {source!r}"
            )
        env.append((variable["name"], str(_FIELD_REFS[field_path](pod))))
    return env


def _readiness(container: Mapping[str, Any], where: str) -> HealthCheck | None:
    probe = container.get("readinessProbe")
    if probe is None:
        return None
    http = probe.get("httpGet")
    if http is None:
        raise PodSpecError(f"{where}.readinessProbe: the testbed runs httpGet probes only; got {probe!r}")
    port = http.get("port")
    if isinstance(port, str) and not port.isdigit():
        named = {p.get("name"): p["containerPort"] for p in container.get("ports") or ()}
        if port not in named:
            raise PodSpecError(
                f"{where}.readinessProbe.httpGet.port: no container port named {port!r} "
                f"(ports: {sorted(str(name) for name in named)})"
            )
        port = named[port]
    return HealthCheck(
        path=http.get("path", "/"),
        port=int(port),
        period_s=float(probe.get("periodSeconds", 10)),
        failure_threshold=int(probe.get("failureThreshold", 3)),
    )
