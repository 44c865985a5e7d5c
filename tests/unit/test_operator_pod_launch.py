"""The chart's operator pod, as the testbed's process-pod launcher reads it: the command line, the
environment and the readiness probe of the real `thrifty operator` that serves it.

The pods here are rendered from charts/thrifty with the helm binary the testbed builds, so a change
to the chart that the testbed could not serve fails here, without a cluster."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from thrifty.testbed.operator_pod import (
    OPERATOR_SELECTOR,
    operator_container,
    operator_launch,
    operator_pods,
)
from thrifty.testbed.pod_container import HealthCheck
from thrifty.testbed.pod_files import PodSpecError
from thrifty.testbed.pod_launch import Launch, PodPlace
from thrifty.testbed.process_pods import process_environment
from thrifty.testbed.router_pod import ROUTER_SELECTOR
from thrifty.testbed.twins import ENGINE_SELECTOR

REPO = Path(__file__).resolve().parents[2]
PLACE = PodPlace(root=Path("/state/operators/thrifty-system_thrifty-abc"), ip="10.244.0.9", python="/venv/py")
TESTBED_PROMETHEUS = "http://127.0.0.1:9090"


def chart_tool(name: str) -> ModuleType:
    tools = str(REPO / "tools" / "chart")
    if tools not in sys.path:
        sys.path.insert(0, tools)
    return importlib.import_module(name)


def chart_operator_pod(*set_values: str) -> dict[str, Any]:
    """The operator Deployment's pod as the chart renders it, once kwok has run it: a name, a uid
    and an IP, in the release namespace."""
    try:
        text = chart_tool("validate").render(set_values)
    except FileNotFoundError as error:
        pytest.fail(str(error))
    deployments = [doc for doc in yaml.safe_load_all(text) if doc and doc["kind"] == "Deployment"]
    assert len(deployments) == 1, "the chart renders one Deployment: the operator's"
    template = deployments[0]["spec"]["template"]
    return {
        "metadata": {
            **template["metadata"],
            "name": "thrifty-abc",
            "namespace": deployments[0]["metadata"]["namespace"],
            "uid": "u-1",
        },
        "spec": {**template["spec"], "nodeName": "cpu-0"},
        "status": {"phase": "Running", "podIP": PLACE.ip},
    }


@pytest.fixture(scope="module")
def default_pod() -> dict[str, Any]:
    return chart_operator_pod()


def env_of(launch: Launch) -> dict[str, str]:
    return dict(launch.env)


def test_the_chart_operator_pod_runs_thrifty_operator_from_this_checkout_with_the_charts_args(
    default_pod: dict[str, Any],
) -> None:
    launch = operator_launch(default_pod, PLACE, prometheus_url=TESTBED_PROMETHEUS)
    # 0.0.0.0 stays: inside the testbed's namespace it answers at the pod's IP.
    assert launch.argv == ("/venv/py", "-m", "thrifty", "operator", "--liveness=http://0.0.0.0:8080/healthz")
    assert launch.service_account == "thrifty"
    assert launch.readiness == HealthCheck(path="/healthz", port=8080, period_s=10.0, failure_threshold=3)
    assert launch.mounts == ()  # its only volume, /tmp, is an emptyDir


def test_the_operator_gets_the_charts_env_with_the_namespace_filled_and_the_testbeds_prometheus(
    default_pod: dict[str, Any],
) -> None:
    launch = operator_launch(default_pod, PLACE, prometheus_url=TESTBED_PROMETHEUS)
    # Every variable as the chart sets it (it adds some as it grows), except the two the testbed fills.
    (container,) = default_pod["spec"]["containers"]
    literal = {item["name"]: item["value"] for item in container["env"] if "value" in item}
    assert literal["THRIFTY_RESYNC_SECONDS"] == "60"
    assert literal["THRIFTY_METRICS_PORT"] == "8081"
    assert env_of(launch) == {
        **literal,
        "THRIFTY_PROMETHEUS_URL": TESTBED_PROMETHEUS,
        "THRIFTY_NAMESPACE": "thrifty-system",  # a fieldRef to metadata.namespace
    }
    assert [name for name, _ in launch.env] == [item["name"] for item in container["env"]]
    assert launch.notes == (
        f"THRIFTY_PROMETHEUS_URL={TESTBED_PROMETHEUS} instead of "
        "http://prometheus-operated.monitoring.svc:9090 (no cluster DNS on the testbed)",
    )


def test_without_a_testbed_prometheus_the_pods_url_is_kept(default_pod: dict[str, Any]) -> None:
    launch = operator_launch(default_pod, PLACE, prometheus_url=None)
    assert env_of(launch)["THRIFTY_PROMETHEUS_URL"] == "http://prometheus-operated.monitoring.svc:9090"
    assert launch.notes == ()


def test_chart_values_reach_the_operators_command_line_env_and_probe() -> None:
    pod = chart_operator_pod(
        "operator.watchNamespaces={models,team-*}",
        "operator.verbose=true",
        "operator.healthPort=9000",
        "operator.metricsPort=9001",
        "operator.resyncSeconds=5",
    )
    launch = operator_pods(prometheus_url=TESTBED_PROMETHEUS).launch(pod, PLACE)
    assert launch.argv[3:] == (
        "operator",
        "--liveness=http://0.0.0.0:9000/healthz",
        "--namespace=models",
        "--namespace=team-*",
        "--verbose",
    )
    assert launch.readiness is not None
    assert launch.readiness.port == 9000
    assert env_of(launch)["THRIFTY_METRICS_PORT"] == "9001"
    assert env_of(launch)["THRIFTY_RESYNC_SECONDS"] == "5"
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "9001"


def test_the_launchers_selector_finds_the_charts_operator_pod_and_not_its_test_pod(
    default_pod: dict[str, Any],
) -> None:
    labels = default_pod["metadata"]["labels"]
    wanted = dict(pair.split("=") for pair in OPERATOR_SELECTOR.split(","))
    assert wanted.items() <= labels.items()
    text = chart_tool("validate").render(())
    test_pods = [doc for doc in yaml.safe_load_all(text) if doc and doc["kind"] == "Pod"]
    assert test_pods, "the chart renders a `helm test` pod"
    for pod in test_pods:
        assert not wanted.items() <= pod["metadata"]["labels"].items(), (
            "the launcher would run helm's test pod"
        )


def test_kwok_leaves_exactly_the_launched_pods_not_ready() -> None:
    """Both pod stages select with one jq expression, negated in one: every pod lands in exactly one,
    and the expression names the labels that the twin and process-pod launchers select by."""
    stages = {
        doc["metadata"]["name"]: doc
        for doc in yaml.safe_load_all((REPO / "testbed" / "kwok-stages.yaml").read_text())
    }

    def served_expression(stage: str) -> tuple[str, str]:
        expressions = stages[stage]["spec"]["selector"]["matchExpressions"]
        found = [e for e in expressions if "labels" in e["key"]]
        assert len(found) == 1
        return found[0]["key"], found[0]["operator"]

    ready_key, ready_operator = served_expression("pod-ready")
    not_ready_key, not_ready_operator = served_expression("pod-started-not-ready")
    assert ready_key == not_ready_key
    assert (ready_operator, not_ready_operator) == ("NotIn", "In")
    for selector in (ENGINE_SELECTOR, ROUTER_SELECTOR, OPERATOR_SELECTOR):
        for pair in selector.split(","):
            label, value = pair.split("=")
            assert f'.metadata.labels["{label}"] == "{value}"' in ready_key, pair
    operator_pair = " and ".join(
        f'.metadata.labels["{label}"] == "{value}"'
        for label, value in (pair.split("=") for pair in OPERATOR_SELECTOR.split(","))
    )
    assert f"({operator_pair})" in ready_key  # both labels together, not either one


def hand_written_pod(**container_changes: Any) -> dict[str, Any]:
    container = {
        "name": "operator",
        "command": ["thrifty"],
        "args": ["operator", "--liveness=http://0.0.0.0:8080/healthz"],
        "ports": [{"name": "health", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "health"}},
        **container_changes,
    }
    return {
        "metadata": {"name": "thrifty-abc", "namespace": "thrifty-system", "uid": "u-1"},
        "spec": {"containers": [container]},
        "status": {"podIP": PLACE.ip},
    }


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"command": ["/usr/bin/thrifty"]}, r"spec\.containers\[operator\]\.command: .* \[thrifty\]"),
        ({"args": ["router"]}, r"spec\.containers\[operator\]\.args: must start with `operator`"),
        (
            {"env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
            r"spec\.containers\[operator\]\.env\[0\]\.valueFrom: the testbed fills only fieldRef",
        ),
        (
            {"readinessProbe": {"httpGet": {"path": "/healthz", "port": "probe"}}},
            r"readinessProbe\.httpGet\.port: no container port named 'probe' \(ports: \['health'\]\)",
        ),
        ({"readinessProbe": {"exec": {"command": ["true"]}}}, r"readinessProbe: the testbed runs httpGet"),
        ({"name": "manager"}, r"spec\.containers: no container named 'operator' \(found \['manager'\]\)"),
    ],
)
def test_what_the_testbed_cannot_run_is_refused_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(PodSpecError, match=field):
        operator_container(hand_written_pod(**changes))


def test_a_pod_without_a_service_account_runs_as_default() -> None:
    assert operator_container(hand_written_pod()).service_account == "default"


def test_the_process_environment_is_the_pods_not_the_launchers() -> None:
    launch = Launch(
        argv=("py",),
        env=(("THRIFTY_RESYNC_SECONDS", "60"), ("PYTHONUNBUFFERED", "1")),
        service_account="thrifty",
        readiness=None,
    )
    inherited = {
        "PATH": "/venv/bin:/usr/bin",
        "VIRTUAL_ENV": "/venv",
        "KUBECONFIG": "/state/kubeconfig",  # the admin's: never handed to a pod
        "KUBERNETES_SERVICE_HOST": "10.96.0.1",
        "THRIFTY_RESYNC_SECONDS": "2",  # a test's own setting must not leak past the chart's
        "THRIFTY_CONTROL_TIME_SCALE": "60",
        "PYTHONUNBUFFERED": "0",
    }
    assert process_environment(inherited, launch, kubeconfig=Path("/pod/sa/kubeconfig")) == {
        "PATH": "/venv/bin:/usr/bin",
        "VIRTUAL_ENV": "/venv",
        "THRIFTY_RESYNC_SECONDS": "60",
        "PYTHONUNBUFFERED": "1",
        "KUBECONFIG": "/pod/sa/kubeconfig",
    }


def test_the_operator_kubeconfig_lives_in_the_pods_service_account_directory() -> None:
    assert PLACE.kubeconfig == PLACE.root / "var/run/secrets/kubernetes.io/serviceaccount/kubeconfig"
