"""Fixtures shared by integration and e2e tests: one real testbed per test session."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from support import eventually, kubectl
from thrifty.testbed.cluster import Testbed, binary_dir
from thrifty.testbed.processes import TestbedError

# Every twin on the test testbed "loads its model" in this long: long enough to see a pod wait
# for it, short enough for a fast suite.
TWIN_LOAD_SECONDS = 2.0


@pytest.fixture(scope="session")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    """The control plane, up once for the whole session and torn down at its end.

    Fails (never skips) outside the namespace that `make test` creates, so a run that cannot
    reach a real apiserver is never mistaken for a passing one.
    """
    bed = Testbed(
        state_dir=tmp_path_factory.mktemp("testbed"),
        bin_dir=binary_dir(),
        twin_load_seconds=TWIN_LOAD_SECONDS,
    )
    try:
        bed.start()
    except TestbedError as error:
        pytest.fail(f"testbed did not come up: {error}")
    yield bed
    bed.stop()


@pytest.fixture(scope="session")
def api_client(testbed: Testbed) -> Any:
    return config.new_client_from_config(config_file=str(testbed.kubeconfig))


@pytest.fixture(scope="session")
def core(api_client: Any) -> Any:
    return client.CoreV1Api(api_client)


@pytest.fixture(scope="session")
def apps(api_client: Any) -> Any:
    return client.AppsV1Api(api_client)


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def thrifty_crds(testbed: Testbed) -> None:
    """The generated CRDs from crds/, installed and Established."""
    for path in sorted((REPO / "crds").glob("*.yaml")):
        kubectl(testbed, "apply", "--server-side", "-f", str(path))
    kubectl(testbed, "wait", "--for=condition=Established", "--timeout=30s", "crd", "--all")
    # Established comes a moment before the new resource's storage serves lists and watches.
    eventually(
        lambda: "storage is (re)initializing" not in kubectl(testbed, "get", "im", "-A", check=False),
        what="the InferenceModel storage to serve",
    )


@dataclass
class OperatorProcess:
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


def fast_loop_env(testbed: Testbed, *, period_s: float, time_scale: float) -> dict[str, str]:
    """The operator's environment for a control loop on the testbed's Prometheus that steps and
    scrapes every `period_s` and runs its policy durations `time_scale` times production's (so a
    scenario of cooldowns and idle delays fits in minutes)."""
    return {
        "THRIFTY_PROMETHEUS_URL": testbed.network.prometheus_url,
        "THRIFTY_CONTROL_SECONDS": f"{period_s:g}",
        "THRIFTY_SCRAPE_INTERVAL_SECONDS": f"{period_s:g}",
        "THRIFTY_CONTROL_TIME_SCALE": f"{time_scale:g}",
    }


def start_operator(
    testbed: Testbed,
    log: Path,
    *,
    namespaces: str,
    port: int,
    extra_env: dict[str, str] | None = None,
    metrics_port: int | None = None,
) -> OperatorProcess:
    """Start `thrifty operator` watching the namespaces matching the glob ``namespaces``, and
    return once its liveness endpoint answers; with ``metrics_port``, it serves its metrics there."""
    env = dict(
        os.environ, KUBECONFIG=str(testbed.kubeconfig), THRIFTY_RESYNC_SECONDS="2", **(extra_env or {})
    )
    liveness = f"http://127.0.0.1:{port}/healthz"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "thrifty",
                "operator",
                "--verbose",
                "--liveness",
                liveness,
                "--namespace",
                namespaces,
                *(["--metrics-port", str(metrics_port)] if metrics_port is not None else []),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = OperatorProcess(process=process, log=log, env=env)

    def alive() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the operator exited early:\n{running.logs()[-3000:]}")
        try:
            with urllib.request.urlopen(liveness, timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    eventually(alive, timeout=30, what="the operator's liveness endpoint")
    return running


def stop_operator(operator: OperatorProcess) -> None:
    if operator.process.poll() is None:
        operator.process.send_signal(signal.SIGTERM)
        try:
            operator.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            operator.process.kill()
            operator.process.wait(timeout=10)


@pytest.fixture(scope="session")
def operator(
    testbed: Testbed, thrifty_crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """`thrifty operator` as a separate process, resyncing every 2 s, for namespaces `models-*`
    (tests that need an operator of their own use other namespaces)."""
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    running = start_operator(testbed, log, namespaces="models-*", port=18080)
    yield running
    stop_operator(running)
