"""The Helm chart's operator pod on the testbed is served by the real `thrifty operator`.

`helm install` is all it takes: kwok runs the operator pod Running but not Ready, the testbed's
process-pod launcher starts the pod's own command as the pod's ServiceAccount at the pod's IP,
and the pod turns Ready when that operator answers its readiness probe. Nothing here starts an
operator by hand. The module has a testbed of its own: the session testbed already runs an
operator (tests/conftest.py), and a second one, cluster-wide, would act on the same objects.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from helm_cli import Helm
from support import eventually, kubectl, own_network, own_testbed
from thrifty.testbed.cluster import Testbed
from thrifty.testbed.processes import pid_alive

pytestmark = pytest.mark.testbed

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "thrifty"
MODEL = REPO / "examples" / "qwen2.5-1.5b-ngram-l4.yaml"  # not gated: no Secret needed
RELEASE = "thrifty"
RELEASE_NAMESPACE = "thrifty-system"
MODELS_NAMESPACE = "team-a"
OPERATOR_SELECTOR = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=operator"

NETWORK = own_network(2)


@pytest.fixture(scope="module")
def chart_testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    """A testbed for this module alone: no CRD applied, no operator running."""
    with own_testbed(tmp_path_factory.mktemp("operator-pod-testbed"), NETWORK) as bed:
        yield bed


def test_a_socket_on_every_address_answers_at_any_pod_ip() -> None:
    """The premise that lets the chart's `--liveness=http://0.0.0.0:...` stand: inside the testbed's
    network namespace the whole pod range is local, so 0.0.0.0 covers every pod's IP."""
    with socket.create_server(("0.0.0.0", 0)) as server:
        port = server.getsockname()[1]
        for pod_ip in ("10.244.192.7", "10.244.3.200"):
            with socket.create_connection((pod_ip, port), timeout=2):
                peer, _ = server.accept()
                assert peer.getsockname() == (pod_ip, port)
                peer.close()


@pytest.mark.timeout(150)
def test_helm_install_runs_the_real_operator_for_the_charts_pod(
    chart_testbed: Testbed, tmp_path: Path
) -> None:
    helm = Helm(chart_testbed, home=tmp_path / "helm")
    # --wait: the Deployment is Available only once the real operator has answered /healthz.
    helm(
        "install",
        RELEASE,
        str(CHART),
        f"--namespace={RELEASE_NAMESPACE}",
        "--create-namespace",
        "--wait",
        "--timeout=90s",
    )
    pod = only_operator_pod(chart_testbed)
    name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
    assert condition(pod, "Ready") == "True"
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0

    # The process behind it: the chart's own command line, as the chart's ServiceAccount.
    state = chart_testbed.state_dir
    pid = int((state / "operators" / f"{RELEASE_NAMESPACE}_{name}.pid").read_text())
    assert pid_alive(pid)
    assert process_argv(pid)[1:] == [
        "-m",
        "thrifty",
        "operator",
        "--liveness=http://0.0.0.0:8080/healthz",
    ]
    env = dict(
        item.decode().partition("=")[::2]
        for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if item
    )
    assert env["THRIFTY_PROMETHEUS_URL"] == chart_testbed.network.prometheus_url  # the one liberty
    assert env["THRIFTY_NAMESPACE"] == RELEASE_NAMESPACE
    kubeconfig = yaml.safe_load(Path(env["KUBECONFIG"]).read_text())
    assert kubeconfig["users"][0]["name"] == f"system:serviceaccount:{RELEASE_NAMESPACE}:{RELEASE}"
    # Bound to 0.0.0.0, the operator answers at its pod's IP: what the probe and Prometheus reach.
    assert http_get(f"http://{ip}:8080/healthz")[0] == 200
    assert "thrifty_reconcile" in http_get(f"http://{ip}:8081/metrics")[1]

    # It works with the chart's RBAC: a model applied now gets its Deployment.
    kubectl(chart_testbed, "create", "namespace", MODELS_NAMESPACE)
    model = yaml.safe_load(MODEL.read_text())
    model["metadata"]["namespace"] = MODELS_NAMESPACE
    kubectl(chart_testbed, "apply", "-f", "-", stdin=json.dumps(model))
    model_name = model["metadata"]["name"]
    eventually(
        lambda: (
            kubectl(chart_testbed, "get", "deployment", model_name, "-n", MODELS_NAMESPACE, check=False)
            .strip()
            .startswith("NAME")
        ),
        timeout=30,
        what=f"the operator to create Deployment {MODELS_NAMESPACE}/{model_name}",
    )
    # Prometheus finds it through the pod's annotations and reads its counters.
    prometheus = chart_testbed.network.prometheus_url
    eventually(
        lambda: query(prometheus, f'up{{namespace="{RELEASE_NAMESPACE}",pod="{name}"}} == 1'),
        timeout=30,
        what="the operator pod as an up target in Prometheus",
    )
    reconciles = eventually(
        lambda: query(prometheus, f'thrifty_reconcile_total{{pod="{name}",kind="InferenceModel"}}'),
        timeout=30,
        what="thrifty_reconcile_total in Prometheus",
    )
    assert sum(float(series["value"][1]) for series in reconciles) >= 1

    # (Checked before the uninstall: that removes the ClusterRoleBinding a moment before the pod.)
    log = state / "logs" / f"operator-{RELEASE_NAMESPACE}_{name}.log"
    assert "forbidden" not in log.read_text(errors="replace").lower()

    # An operator that dies is restarted, as a kubelet restarts a container, and the restart counted.
    os.kill(pid, signal.SIGKILL)
    eventually(
        lambda: restart_count(chart_testbed) == 1, timeout=30, what="restartCount 1 on the operator container"
    )
    eventually(
        lambda: condition(only_operator_pod(chart_testbed), "Ready") == "True", timeout=30, what="Ready again"
    )
    restarted = int((state / "operators" / f"{RELEASE_NAMESPACE}_{name}.pid").read_text())
    assert restarted != pid
    assert pid_alive(restarted)

    # An upgrade that changes the pod replaces it (Recreate): the old process goes, the new pod's
    # process runs the new arguments.
    helm(
        "upgrade",
        RELEASE,
        str(CHART),
        f"--namespace={RELEASE_NAMESPACE}",
        "--set=operator.verbose=true",
        "--wait",
        "--timeout=90s",
    )
    eventually(
        lambda: not pid_alive(restarted), timeout=30, what=f"the old operator process {restarted} to stop"
    )
    old_root = state / "operators" / f"{RELEASE_NAMESPACE}_{name}"
    eventually(lambda: not old_root.exists(), what="the old pod's directory (its token) to be removed")
    upgraded = only_operator_pod(chart_testbed)
    assert upgraded["metadata"]["name"] != name
    assert condition(upgraded, "Ready") == "True"
    new_pid = int(
        (state / "operators" / f"{RELEASE_NAMESPACE}_{upgraded['metadata']['name']}.pid").read_text()
    )
    assert process_argv(new_pid)[-1] == "--verbose"

    # `helm uninstall` deletes the pod, and with it the process.
    helm("uninstall", RELEASE, f"--namespace={RELEASE_NAMESPACE}", "--wait", "--timeout=60s")
    eventually(lambda: not pid_alive(new_pid), timeout=30, what=f"operator process {new_pid} to stop")
    pod_root = state / "operators" / f"{RELEASE_NAMESPACE}_{upgraded['metadata']['name']}"
    eventually(lambda: not pod_root.exists(), what="the pod's directory (its token) to be removed")


def only_operator_pod(testbed: Testbed) -> dict[str, Any]:
    pods = json.loads(
        kubectl(testbed, "get", "pods", "-n", RELEASE_NAMESPACE, "-l", OPERATOR_SELECTOR, "-o", "json")
    )["items"]
    assert len(pods) == 1, [pod["metadata"]["name"] for pod in pods]
    return dict(pods[0])


def process_argv(pid: int) -> list[str]:
    return [arg.decode() for arg in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]]


def restart_count(testbed: Testbed) -> int:
    return int(only_operator_pod(testbed)["status"]["containerStatuses"][0]["restartCount"])


def condition(pod: dict[str, Any], kind: str) -> str | None:
    return next((c["status"] for c in pod["status"].get("conditions") or [] if c["type"] == kind), None)


def http_get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


def query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    _, body = http_get(f"{prometheus}/api/v1/query?query={urllib.parse.quote(promql)}")
    result: list[dict[str, Any]] = json.loads(body)["data"]["result"]
    return result
