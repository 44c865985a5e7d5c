"""How the testbed runs a router pod's container as a local process: read the pod, plan the process.

A router pod (what the InferenceRouter reconcile renders) has one container named `router` that
runs `thrifty router --config <file in a configMap volume> --port N`, with a readiness probe on
GET /health. :func:`router_container` reads that out of the pod and refuses, naming the field,
whatever the testbed cannot run; :func:`command_line` turns it into the local command, bound to
the pod's own IP; :data:`ROUTER_PODS` hands both to the process-pod launcher.

The one liberty the testbed takes with the pod: the process does not run in the pod's
filesystem, so every path that points into a mounted ConfigMap (the `--config` argument, and
`classifierPath` inside router.json) is rewritten to the copy under the pod's root directory
(:mod:`thrifty.testbed.pod_files`). Everything else is the pod's own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

from thrifty.router.main import DEFAULT_CONFIG
from thrifty.testbed.pod_container import (
    HealthCheck,
    container_args,
    container_environment,
    flag_value,
    readiness_check,
    service_account,
    thrifty_container,
    where,
)
from thrifty.testbed.pod_files import (
    ConfigMapMount,
    PodSpecError,
    config_map_mounts,
    rehome,
    rehome_arguments,
)
from thrifty.testbed.pod_launch import Launch, PodKind, PodPlace
from thrifty.testbed.router_access import EndpointAccessWatch

ROUTER_SELECTOR = "thrifty.dev/role=router"
CONTAINER_NAME = "router"
DEFAULT_PORT = 8000


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
    container = thrifty_container(pod, CONTAINER_NAME, subcommand="router")
    args = container_args(container)
    port_value = flag_value(args, "--port")
    try:
        port = int(port_value) if port_value is not None else DEFAULT_PORT
    except ValueError:
        raise PodSpecError(f"{where(container)}.args: --port {port_value!r} is not a number") from None
    config = flag_value(args, "--config")
    return RouterContainer(
        args=args,
        port=port,
        config_path=PurePosixPath(config) if config is not None else PurePosixPath(DEFAULT_CONFIG),
        mounts=tuple(config_map_mounts(pod["spec"], container)),
        env=container_environment(pod, container),
        service_account=service_account(pod),
        readiness=readiness_check(container),
    )


def command_line(container: RouterContainer, *, python: str, root: Path, host: str) -> list[str]:
    """The local command for the container: `thrifty router` on the pod's IP, with paths into the
    mounts rewritten under ``root``."""
    args = rehome_arguments(container.args, container.mount_paths, root)
    if flag_value(container.args, "--config") is None:
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


def router_launch(pod: Mapping[str, Any], place: PodPlace) -> Launch:
    """The process for a router pod: `thrifty router` at the pod's IP with its mounts under the pod's
    root, and a watch that names a missing EndpointSlice permission in the launcher's log."""
    container = router_container(pod)
    metadata = pod["metadata"]
    return Launch(
        argv=tuple(command_line(container, python=place.python, root=place.root, host=place.ip)),
        env=container.env,
        service_account=container.service_account,
        readiness=container.readiness,
        mounts=container.mounts,
        files_for_process=partial(files_for_process, container=container, root=place.root),
        while_running=EndpointAccessWatch(
            key=f"{metadata['namespace']}/{metadata['name']}",
            account=f"system:serviceaccount:{metadata['namespace']}:{container.service_account}",
            kubeconfig=place.kubeconfig,
            config_path=place.root / container.config_path.relative_to("/"),
            pod_namespace=metadata["namespace"],
        ),
    )


ROUTER_PODS = PodKind(name="router", selector=ROUTER_SELECTOR, launch=router_launch)
"""Router pods, as the InferenceRouter reconcile renders them."""
