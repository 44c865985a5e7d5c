"""How the testbed runs the Helm chart's operator pod as a local process: the real `thrifty operator`.

The chart's operator pod (labels app.kubernetes.io/name=thrifty, app.kubernetes.io/component=
operator) has one container named `operator` that runs `thrifty operator --liveness=http://0.0.0.0:
<healthPort>/healthz ...`, configured through its env (literal values and a fieldRef), with a
readiness probe on GET /healthz at the port named `health`. :func:`operator_container` reads that
out of the pod, refusing what the testbed cannot run with the field's path; :func:`operator_pods`
hands it to the process-pod launcher, which runs it as the pod's ServiceAccount, so the chart's
least-privilege RBAC is all the operator may do.

Addresses stay as the chart wrote them: inside the testbed's network namespace the whole pod range
is local, so the operator's sockets on 0.0.0.0 (its liveness endpoint, its metrics) answer at the
pod's IP, where the readiness probe and Prometheus reach them.

The one liberty the testbed takes: THRIFTY_PROMETHEUS_URL names an in-cluster Service (the
chart's default is the Prometheus Operator's `prometheus-operated.monitoring.svc`) that nothing
resolves on the testbed, which has no cluster DNS; its value becomes the testbed's own Prometheus.
Everything else (resync period, metrics port, router image, ...) is passed through as the chart
sets it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from thrifty.testbed.pod_container import (
    HealthCheck,
    container_args,
    container_environment,
    readiness_check,
    service_account,
    thrifty_container,
)
from thrifty.testbed.pod_launch import Launch, PodKind, PodPlace

OPERATOR_SELECTOR = "app.kubernetes.io/name=thrifty,app.kubernetes.io/component=operator"
"""The chart's operator pod (thrifty.operatorSelectorLabels, without the release's instance label,
so every release is served). kwok-stages.yaml matches the same label pair."""
CONTAINER_NAME = "operator"
PROMETHEUS_URL_VARIABLE = "THRIFTY_PROMETHEUS_URL"


@dataclass(frozen=True)
class OperatorContainer:
    """Everything needed to run the operator pod's container here."""

    args: tuple[str, ...]
    """The container's arguments after `thrifty` (`operator`, `--liveness=...`, ...), as given."""
    env: tuple[tuple[str, str], ...]
    """The container's environment, with fieldRef values filled from the pod."""
    service_account: str
    """The pod's ServiceAccount: the operator acts as it towards the apiserver."""
    readiness: HealthCheck | None
    """The readiness probe (GET /healthz on the `health` port in the chart)."""


def operator_container(pod: Mapping[str, Any]) -> OperatorContainer:
    """Read the `operator` container of the chart's operator pod; :class:`PodSpecError` says what
    the testbed cannot run, and where."""
    container = thrifty_container(pod, CONTAINER_NAME, subcommand="operator")
    return OperatorContainer(
        args=container_args(container),
        env=container_environment(pod, container),
        service_account=service_account(pod),
        readiness=readiness_check(container),
    )


def command_line(container: OperatorContainer, *, python: str) -> list[str]:
    """The local command: the container's own `thrifty operator ...`, from this checkout."""
    return [python, "-m", "thrifty", *container.args]


def testbed_environment(
    env: tuple[tuple[str, str], ...], *, prometheus_url: str | None
) -> tuple[tuple[str, str], ...]:
    """The container's env with THRIFTY_PROMETHEUS_URL pointed at the testbed's Prometheus (when
    the launcher knows it and the pod sets the variable); every other variable as the pod has it."""
    if prometheus_url is None:
        return env
    return tuple((name, prometheus_url if name == PROMETHEUS_URL_VARIABLE else value) for name, value in env)


def operator_launch(pod: Mapping[str, Any], place: PodPlace, *, prometheus_url: str | None) -> Launch:
    container = operator_container(pod)
    env = testbed_environment(container.env, prometheus_url=prometheus_url)
    notes = tuple(
        f"{name}={value} instead of {before} (no cluster DNS on the testbed)"
        for (name, before), (_, value) in zip(container.env, env, strict=True)
        if before != value
    )
    return Launch(
        argv=tuple(command_line(container, python=place.python)),
        env=env,
        service_account=container.service_account,
        readiness=container.readiness,
        notes=notes,
    )


def operator_pods(*, prometheus_url: str | None) -> PodKind:
    """The chart's operator pods; ``prometheus_url`` is the testbed's Prometheus (None keeps the
    pod's THRIFTY_PROMETHEUS_URL as it is)."""
    return PodKind(
        name="operator",
        selector=OPERATOR_SELECTOR,
        launch=partial(operator_launch, prometheus_url=prometheus_url),
    )
