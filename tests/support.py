"""Helpers shared by integration and e2e tests (importable as `support`: see pythonpath in pyproject)."""

from __future__ import annotations

import contextlib
import importlib
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import yaml

from thrifty.testbed.cluster import Network, Testbed, binary_dir
from thrifty.testbed.processes import TestbedError

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], *, timeout: float = 30, what: str, interval: float = 0.2) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def kubectl(testbed: Testbed, *args: str, stdin: str | None = None, check: bool = True) -> str:
    """Run the testbed's own kubectl (built with the control plane) against it."""
    result = subprocess.run(
        [str(testbed.bin_dir / "kubectl"), f"--kubeconfig={testbed.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
    return result.stdout + (result.stderr if not check else "")


def load_example(path: Path, namespace: str) -> dict[str, Any]:
    """An example manifest, moved into ``namespace``."""
    body: dict[str, Any] = yaml.safe_load(path.read_text())
    body["metadata"]["namespace"] = namespace
    return body


def condition(body: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The status condition of type ``kind`` of a Thrifty object, if it has one."""
    for item in (body.get("status") or {}).get("conditions") or []:
        if item["type"] == kind:
            return dict(item)
    return None


def own_network(index: int) -> Network:
    """Addresses and ports for the index-th testbed of its own (1, 2, 3), apart from the session
    testbed's and from each other's, so that all can run in one network namespace."""
    offset = 1000 * index
    return Network(
        kwok_first_pod_ip=f"10.244.{64 * index}.1/16",
        apiserver_ip=f"10.245.0.{10 * index + 1}",
        node_ip=f"10.245.0.{10 * index + 2}",
        etcd_port=21379 + offset,
        etcd_peer_port=21380 + offset,
        apiserver_port=25443 + offset,
        controller_manager_port=29257 + offset,
        scheduler_port=29259 + offset,
        kwok_port=29247 + offset,
        prometheus_port=28090 + offset,
    )


@contextlib.contextmanager
def own_testbed(directory: Path, network: Network) -> Iterator[Testbed]:
    """A second testbed beside the session's, in the same network namespace (``network`` must use
    other addresses and ports): for tests that need a cluster where nobody applied the CRDs or
    started an operator, as a user's would be before `helm install`."""
    bed = Testbed(state_dir=directory, bin_dir=binary_dir(), twin_load_seconds=2, network=network)
    try:
        bed.start()
    except TestbedError as error:
        raise AssertionError(f"the testbed in {directory} did not come up: {error}") from error
    try:
        yield bed
    finally:
        bed.stop()


@contextlib.contextmanager
def scratch_namespace(
    core: Any, prefix: str, *, hf_token: str | None = None, wait_for_pods: bool = False
) -> Iterator[str]:
    """A namespace of its own for one test, `<prefix>-<random>`, deleted afterwards. With
    ``hf_token``, it holds the Secret `hf-token` the gated examples name; with ``wait_for_pods``,
    deletion waits until its pods are gone (see `delete_namespace`)."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name}})
    if hf_token is not None:
        core.create_namespaced_secret(
            name, {"metadata": {"name": "hf-token"}, "stringData": {"token": hf_token}}
        )
    try:
        yield name
    finally:
        if wait_for_pods:
            delete_namespace(core, name)
        else:
            core.delete_namespace(name)


def delete_namespace(core: Any, name: str, *, timeout: float = 120) -> None:
    """Delete a test's namespace and wait until its pods are gone, so that the GPUs they held (the
    testbed has only two L4s) are free for the next test."""
    core.delete_namespace(name)
    eventually(
        lambda: not core.list_namespaced_pod(name).items,
        timeout=timeout,
        interval=1,
        what=f"the pods of {name} to go",
    )


CHART_TOOLS = Path(__file__).resolve().parents[1] / "tools" / "chart"


def chart_tool(name: str) -> ModuleType:
    """A module of tools/chart (a folder of scripts, not a package), imported by name."""
    if str(CHART_TOOLS) not in sys.path:
        sys.path.insert(0, str(CHART_TOOLS))
    return importlib.import_module(name)
