"""Reading one container of a simulated pod that the testbed serves with a local `thrifty` process.

The pieces every such pod shares (router pods, the operator pod): find the container by name,
check that it runs `thrifty <subcommand>`, fill its environment (literal values and the downward
API's fieldRefs, from the pod object), and read its HTTP readiness probe. Each function raises
:class:`~thrifty.testbed.pod_files.PodSpecError` naming the field the testbed cannot serve.

    container = thrifty_container(pod, "operator", subcommand="operator")
    env = container_environment(pod, container)
    readiness = readiness_check(container)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from thrifty.testbed.pod_files import PodSpecError

FIELD_REFS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "metadata.name": lambda pod: str(pod["metadata"]["name"]),
    "metadata.namespace": lambda pod: str(pod["metadata"]["namespace"]),
    "metadata.uid": lambda pod: str(pod["metadata"]["uid"]),
    "spec.nodeName": lambda pod: str(pod["spec"].get("nodeName", "")),
    "spec.serviceAccountName": lambda pod: str(pod["spec"].get("serviceAccountName", "default")),
    "status.podIP": lambda pod: str(pod["status"].get("podIP", "")),
}
"""The pod fields a container may read through env valueFrom.fieldRef that the testbed can fill."""


@dataclass(frozen=True)
class HealthCheck:
    """The container's HTTP readiness probe, with a named port already resolved to its number."""

    path: str
    port: int
    period_s: float = 10.0
    """Seconds between probes once the pod is Ready (the probe's periodSeconds)."""
    failure_threshold: int = 3
    """Failed probes in a row that turn a Ready pod not Ready (the probe's failureThreshold)."""


def where(container: Mapping[str, Any]) -> str:
    """The field path of ``container`` in the pod, for error messages."""
    return f"spec.containers[{container.get('name')}]"


def thrifty_container(pod: Mapping[str, Any], name: str, *, subcommand: str) -> Mapping[str, Any]:
    """The container ``name`` of ``pod``, checked to run `thrifty <subcommand> ...`: the one command
    the testbed can run here, from this checkout, in place of the image."""
    containers: dict[str, Mapping[str, Any]] = {
        container["name"]: container for container in pod["spec"].get("containers") or ()
    }
    container = containers.get(name)
    if container is None:
        raise PodSpecError(
            f"spec.containers: no container named {name!r} (found {sorted(containers)}); "
            f"a {subcommand} pod runs `thrifty {subcommand}` in a container of that name"
        )
    if list(container.get("command") or ()) != ["thrifty"]:
        raise PodSpecError(
            f"{where(container)}.command: the testbed runs {subcommand} pods with command [thrifty]; "
            f"got {container.get('command')!r}"
        )
    args = [str(arg) for arg in container.get("args") or ()]
    if args[:1] != [subcommand]:
        raise PodSpecError(f"{where(container)}.args: must start with `{subcommand}`; got {args!r}")
    return container


def container_args(container: Mapping[str, Any]) -> tuple[str, ...]:
    """The container's arguments after `thrifty`, as strings."""
    return tuple(str(arg) for arg in container.get("args") or ())


def flag_value(args: Iterable[str], flag: str) -> str | None:
    """The value of ``flag`` (``--flag V`` or ``--flag=V``), the last one winning as in argparse."""
    found = None
    items = list(args)
    for index, arg in enumerate(items):
        if arg == flag and index + 1 < len(items):
            found = items[index + 1]
        elif arg.startswith(flag + "="):
            found = arg.partition("=")[2]
    return found


def container_environment(
    pod: Mapping[str, Any], container: Mapping[str, Any]
) -> tuple[tuple[str, str], ...]:
    """The container's env in order: literal values kept, fieldRefs filled from ``pod``."""
    env = []
    for index, variable in enumerate(container.get("env") or ()):
        source = variable.get("valueFrom")
        if source is None:
            env.append((variable["name"], str(variable.get("value", ""))))
            continue
        field_path = (source.get("fieldRef") or {}).get("fieldPath")
        if field_path not in FIELD_REFS:
            raise PodSpecError(
                f"{where(container)}.env[{index}].valueFrom: the testbed fills only fieldRef "
                f"{', '.join(sorted(FIELD_REFS))}; got {source!r}"
            )
        env.append((variable["name"], FIELD_REFS[field_path](pod)))
    return tuple(env)


def service_account(pod: Mapping[str, Any]) -> str:
    """The pod's ServiceAccount, as the admission plugin defaults it."""
    return str(pod["spec"].get("serviceAccountName") or "default")


def readiness_check(container: Mapping[str, Any]) -> HealthCheck | None:
    """The container's readiness probe; None when it has none (Ready as soon as the process runs)."""
    probe = container.get("readinessProbe")
    if probe is None:
        return None
    http = probe.get("httpGet")
    if http is None:
        raise PodSpecError(
            f"{where(container)}.readinessProbe: the testbed runs httpGet probes only; got {probe!r}"
        )
    return HealthCheck(
        path=http.get("path", "/"),
        port=container_port(container, http.get("port"), f"{where(container)}.readinessProbe.httpGet.port"),
        period_s=float(probe.get("periodSeconds", 10)),
        failure_threshold=int(probe.get("failureThreshold", 3)),
    )


def container_port(container: Mapping[str, Any], port: object, field: str) -> int:
    """A probe's port as a number: given as one, or as the name of one of the container's ports."""
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    named = {entry.get("name"): entry["containerPort"] for entry in container.get("ports") or ()}
    if port not in named:
        raise PodSpecError(
            f"{field}: no container port named {port!r} (ports: {sorted(str(name) for name in named)})"
        )
    return int(named[port])
