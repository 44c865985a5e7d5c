"""Bring the whole testbed up and down inside the current network namespace.

Call this only inside a namespace made for it (``testbed/netns.sh`` sets ``THRIFTY_NETNS=1`` after
it has made the pod and node ranges local there); :func:`require_testbed_namespace` refuses
otherwise, so nothing here ever touches the machine's own network.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from thrifty.testbed import kube
from thrifty.testbed.nodes import desired_nodes, load_node_profile
from thrifty.testbed.pki import Pki, generate_pki
from thrifty.testbed.processes import Component, TestbedError, start_process, stop_process, wait_until
from thrifty.testbed.prometheus import prometheus_config

TESTBED_DIR = Path(__file__).resolve().parents[3] / "testbed"


@dataclass(frozen=True)
class Network:
    """Addresses inside the testbed's namespace; both ranges are routed to `lo` by netns.sh."""

    pod_cidr: str = "10.244.0.0/16"
    # kwok hands out pod IPs counting up from this exact address.
    kwok_first_pod_ip: str = "10.244.0.1/16"
    apiserver_ip: str = "10.245.0.1"
    node_ip: str = "10.245.0.2"
    service_cidr: str = "10.96.0.0/16"
    service_ip: str = "10.96.0.1"
    etcd_port: int = 2379
    # Distinct per testbed too: etcd binds it even as a one-member cluster.
    etcd_peer_port: int = 2380
    apiserver_port: int = 6443
    controller_manager_port: int = 10257
    scheduler_port: int = 10259
    kwok_port: int = 10247
    prometheus_port: int = 9090

    @property
    def apiserver_url(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"


def require_testbed_namespace() -> None:
    if os.environ.get("THRIFTY_NETNS") != "1":
        raise TestbedError(
            "the testbed runs only inside its own network namespace; start it with "
            "`thrifty testbed up` or run the command under testbed/netns.sh"
        )


def binary_dir() -> Path:
    """The per-version cache that testbed/build.sh fills (same key as the script computes)."""
    script = f"source {TESTBED_DIR / 'env.sh'} && testbed_bin_dir"
    out = subprocess.run(["bash", "-c", script], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


@dataclass
class Testbed:
    """The running control plane. ``start()`` returns once nodes are Ready; ``stop()`` ends it all."""

    __test__ = False  # not a pytest test class, despite the name

    state_dir: Path
    bin_dir: Path
    node_profile: Path = TESTBED_DIR / "nodes.yaml"
    network: Network = field(default_factory=Network)
    # Simulated model load time of every twin; None models it from the weights' size (~30 s for
    # an 8B model), which is faithful but slow for tests.
    twin_load_seconds: float | None = None
    components: list[Component] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    def start(self) -> None:
        require_testbed_namespace()
        started = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        profile = load_node_profile(self.node_profile)  # fail on a bad profile before starting anything
        net = self.network
        pki = generate_pki(
            self.state_dir / "pki", apiserver_ips=[net.apiserver_ip], service_ip=net.service_ip
        )
        self._write_kubeconfig(pki)
        try:
            self._start_control_plane(pki)
            kube.wait_for_service_account(self.kubeconfig, namespace="default", timeout=60)
            kube.create_nodes(self.kubeconfig, desired_nodes(profile))
            kube.wait_for_nodes_ready(
                self.kubeconfig, [n["metadata"]["name"] for n in desired_nodes(profile)]
            )
        except BaseException:
            self.stop()
            raise
        self._write_state(up_seconds=time.monotonic() - started)

    def stop(self) -> None:
        """Stop every component in reverse start order, by pid, and reap it."""
        for component in reversed(self.components):
            stop_process(component)
        self.components.clear()

    def remove_state(self) -> None:
        shutil.rmtree(self.state_dir, ignore_errors=True)

    # -- internals ---------------------------------------------------------------------------

    def _binary(self, name: str) -> str:
        path = self.bin_dir / name
        if not path.is_file():
            raise TestbedError(f"{path} is missing: run `make testbed-build` (testbed/build.sh) first")
        return str(path)

    def _start(self, name: str, argv: list[str]) -> Component:
        return self._start_command(name, [self._binary(name), *argv])

    def _start_command(self, name: str, argv: list[str]) -> Component:
        component = start_process(name, argv, self.state_dir / "logs")
        self.components.append(component)
        return component

    def _start_control_plane(self, pki: Pki) -> None:
        net, state = self.network, self.state_dir
        tls = _tls_context(pki)
        etcd_url = f"http://127.0.0.1:{net.etcd_port}"
        peer_url = f"http://127.0.0.1:{net.etcd_peer_port}"
        etcd = self._start(
            "etcd",
            [
                "--name=testbed",
                f"--data-dir={state / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=testbed={peer_url}",
                # A throwaway cluster: durability is not worth the fsync latency on a small disk.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        wait_until(etcd, lambda: _http_ok(f"{etcd_url}/health"), what="etcd healthy")

        apiserver = self._start(
            "kube-apiserver",
            [
                f"--etcd-servers={etcd_url}",
                "--bind-address=0.0.0.0",
                f"--secure-port={net.apiserver_port}",
                # Without a default route the apiserver cannot pick an address by itself, and a
                # loopback one breaks the `kubernetes` Service's EndpointSlice.
                f"--advertise-address={net.apiserver_ip}",
                f"--tls-cert-file={pki.apiserver_cert}",
                f"--tls-private-key-file={pki.apiserver_key}",
                f"--client-ca-file={pki.ca_cert}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki.service_account_public_key}",
                f"--service-account-signing-key-file={pki.service_account_key}",
                f"--service-cluster-ip-range={net.service_cidr}",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                "--profiling=false",
            ],
        )
        wait_until(
            apiserver,
            lambda: _http_ok(f"{net.apiserver_url}/readyz", tls),
            what="apiserver ready",
            timeout=90,
        )

        allow_paths = "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics"
        controller_manager = self._start(
            "kube-controller-manager",
            [
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={net.controller_manager_port}",
                f"--service-account-private-key-file={pki.service_account_key}",
                f"--root-ca-file={pki.ca_cert}",
                "--use-service-account-credentials=false",
                allow_paths,
            ],
        )
        scheduler = self._start(
            "kube-scheduler",
            [
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={net.scheduler_port}",
                allow_paths,
            ],
        )
        kwok = self._start(
            "kwok",
            [
                f"--kubeconfig={self.kubeconfig}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                f"--cidr={net.kwok_first_pod_ip}",
                f"--node-ip={net.node_ip}",
                f"--config={TESTBED_DIR / 'kwok-stages.yaml'}",
                f"--server-address=127.0.0.1:{net.kwok_port}",
            ],
        )
        prometheus = self._launch_prometheus()
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # kcm and the scheduler serve self-signed health endpoints
        wait_until(
            controller_manager,
            lambda: _http_ok(f"https://127.0.0.1:{net.controller_manager_port}/healthz", insecure),
            what="controller-manager healthy",
        )
        wait_until(
            scheduler,
            lambda: _http_ok(f"https://127.0.0.1:{net.scheduler_port}/healthz", insecure),
            what="scheduler healthy",
        )
        wait_until(kwok, lambda: _http_ok(f"http://127.0.0.1:{net.kwok_port}/healthz"), what="kwok healthy")
        wait_until(prometheus, lambda: _http_ok(f"{net.prometheus_url}/-/ready"), what="prometheus ready")
        twins = [sys.executable, "-m", "thrifty.testbed.twins", f"--kubeconfig={self.kubeconfig}"]
        if self.twin_load_seconds is not None:
            twins.append(f"--load-seconds={self.twin_load_seconds}")
        self._start_command("twins", twins)
        # Router pods and the Helm chart's operator pod: real `thrifty` processes at their pod IPs.
        self._start_command(
            "process-pods",
            [
                sys.executable,
                "-m",
                "thrifty.testbed.process_pods",
                f"--kubeconfig={self.kubeconfig}",
                f"--state-dir={self.state_dir}",
                f"--prometheus-url={net.prometheus_url}",
            ],
        )

    def _launch_prometheus(self) -> Component:
        prometheus_yaml = self.state_dir / "prometheus.yml"
        prometheus_yaml.write_text(yaml.safe_dump(prometheus_config(self.kubeconfig), sort_keys=False))
        return self._start(
            "prometheus",
            [
                f"--config.file={prometheus_yaml}",
                f"--storage.tsdb.path={self.state_dir / 'prometheus'}",
                f"--web.listen-address=127.0.0.1:{self.network.prometheus_port}",
                "--log.level=warn",
            ],
        )

    def stop_prometheus(self) -> None:
        """Stop Prometheus alone (tests of how Thrifty behaves without metrics)."""
        for component in [c for c in self.components if c.name == "prometheus"]:
            stop_process(component)
            self.components.remove(component)

    def start_prometheus(self) -> None:
        """Start Prometheus again on its old data after :meth:`stop_prometheus`."""
        prometheus = self._launch_prometheus()
        url = f"{self.network.prometheus_url}/-/ready"
        wait_until(prometheus, lambda: _http_ok(url), what="prometheus ready")

    def _write_kubeconfig(self, pki: Pki) -> None:
        config: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "testbed",
                    "cluster": {
                        "server": self.network.apiserver_url,
                        "certificate-authority": str(pki.ca_cert),
                    },
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {"client-certificate": str(pki.admin_cert), "client-key": str(pki.admin_key)},
                }
            ],
            "contexts": [{"name": "testbed", "context": {"cluster": "testbed", "user": "admin"}}],
            "current-context": "testbed",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))

    def _write_state(self, *, up_seconds: float) -> None:
        state = {
            "namespace_pid": os.getpid(),
            "kubeconfig": str(self.kubeconfig),
            "prometheus": self.network.prometheus_url,
            "bin_dir": str(self.bin_dir),
            "up_seconds": round(up_seconds, 1),
            "components": {c.name: c.pid for c in self.components},
        }
        self.state_file.write_text(json.dumps(state, indent=2))


def _tls_context(pki: Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
    return context


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return bool(response.status == 200)
    except OSError:
        return False
