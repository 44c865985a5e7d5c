"""The process-pod launcher: a real `thrifty` process for every router pod and every operator pod.

kwok starts these pods Running with an IP but not Ready (testbed/kwok-stages.yaml). This process
plays the kubelet for them: it copies a pod's configMap volumes into a directory of the pod's own
and keeps them in sync, gets a token for the pod's ServiceAccount (so the process's RBAC is the
cluster's, not the admin's), starts the container's command as a local process at the pod's IP,
turns the pod Ready when its readiness probe passes, restarts the process with a growing backoff
when it exits, and stops it, by pid, when the pod goes away. What differs between kinds of pod
(which pods, what command) comes from a :class:`~thrifty.testbed.pod_launch.PodKind`:
:mod:`thrifty.testbed.router_pod` for the routers the operator creates,
:mod:`thrifty.testbed.operator_pod` for the operator the Helm chart installs.

    python -m thrifty.testbed.process_pods --kubeconfig <admin kubeconfig> --state-dir <testbed state> \
        --prometheus-url http://127.0.0.1:9090

Files, for a pod of kind K: ``<state>/Ks/<namespace>_<pod>/`` is the pod's root (its mounts and
its ServiceAccount kubeconfig), ``<state>/Ks/<namespace>_<pod>.pid`` the running process,
``<state>/logs/K-<namespace>_<pod>.log`` its output.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from thrifty.k8s import objects
from thrifty.testbed.kube import service_account_kubeconfig
from thrifty.testbed.operator_pod import operator_pods
from thrifty.testbed.pod_files import MissingConfigMapError, PodSpecError, mounted_files, write_files
from thrifty.testbed.pod_launch import Launch, PodKind, PodPlace
from thrifty.testbed.pod_readiness import set_pod_ready
from thrifty.testbed.router_pod import ROUTER_PODS

log = logging.getLogger("thrifty.process_pods")

POLL_SECONDS = 0.5
# The kubelet's restart backoff doubles from 10 s up to 5 min and resets after 10 min of clean
# running. Same shape here, starting at 1 s so that a test sees a restart within seconds.
RESTART_BACKOFF_FIRST_S = 1.0
RESTART_BACKOFF_MAX_S = 300.0
RESTART_BACKOFF_RESET_S = 600.0
STOP_GRACE_S = 10.0
# Of the launcher's own environment a process keeps what runs Python here (PATH, the virtualenv,
# locale, ...), but nothing that configures a Kubernetes client or Thrifty itself: those come from
# the pod spec alone, as in a container.
WITHHELD_PREFIXES = ("KUBERNETES_", "THRIFTY_")
WITHHELD_VARIABLES = ("KUBECONFIG",)


def restart_delay(restarts: int) -> float:
    """Seconds to wait before the ``restarts``-th restart (1-based): doubling, capped."""
    return min(RESTART_BACKOFF_FIRST_S * 2.0 ** max(restarts - 1, 0), RESTART_BACKOFF_MAX_S)


def process_environment(inherited: Mapping[str, str], launch: Launch, *, kubeconfig: Path) -> dict[str, str]:
    """The environment of a pod's process: the launcher's, less what would configure the process
    from outside its pod spec, then the container's env, then the ServiceAccount's kubeconfig."""
    env = {
        name: value
        for name, value in inherited.items()
        if not name.startswith(WITHHELD_PREFIXES) and name not in WITHHELD_VARIABLES
    }
    env |= dict(launch.env)
    env["KUBECONFIG"] = str(kubeconfig)
    return env


@dataclass
class ServedPod:
    """One pod of some kind and the process that serves it."""

    kind: PodKind
    uid: str
    namespace: str
    name: str
    place: PodPlace
    log: Path
    pid_file: Path
    launch: Launch | None = None
    """None when the testbed cannot run this pod (logged once; the pod stays not Ready)."""
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    ready: bool = False
    restarts: int = 0
    next_start: float = 0.0
    next_probe: float = 0.0
    probe_failures: int = 0
    waiting_for: str | None = None
    """Why the process is not running yet; logged once each time it changes."""

    @property
    def label(self) -> str:
        """``<kind> <namespace>/<pod>``: how log lines name the pod."""
        return f"{self.kind.name} {self.namespace}/{self.name}"


@dataclass
class Launcher:
    """Keeps one process per live pod of each kind."""

    kubeconfig: Path
    state_dir: Path
    kinds: Sequence[PodKind]
    python: str = sys.executable
    served: dict[str, ServedPod] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.api: client.ApiClient = config.new_client_from_config(config_file=str(self.kubeconfig))  # type: ignore[no-untyped-call]

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.sync()
            except Exception:  # the API may blip; keep serving what runs and retry
                log.exception("process-pod launcher sync failed")
            stop.wait(POLL_SECONDS)
        for uid in list(self.served):
            self._stop(uid)

    def sync(self) -> None:
        live: dict[str, tuple[PodKind, dict[str, Any]]] = {}
        for kind in self.kinds:
            for pod in objects.list_objects(
                self.api, "v1", "Pod", namespace=None, label_selector=kind.selector
            ):
                if (
                    not pod["metadata"].get("deletionTimestamp")
                    and pod.get("status", {}).get("phase") == "Running"
                    and pod["status"].get("podIP")
                ):
                    live[pod["metadata"]["uid"]] = (kind, pod)
        for uid in [uid for uid in self.served if uid not in live]:
            self._stop(uid)
        config_maps: dict[tuple[str, str], dict[str, Any] | None] = {}
        for uid, (kind, pod) in live.items():
            served = self.served.get(uid) or self._adopt(kind, pod)
            if served.launch is None:
                continue
            try:
                self._tend(served, served.launch, config_maps)
            except Exception:  # one pod's trouble must not stop the others
                log.exception("%s: sync failed", served.label)

    # -- one pod --------------------------------------------------------------------------------

    def _adopt(self, kind: PodKind, pod: dict[str, Any]) -> ServedPod:
        metadata = pod["metadata"]
        slug = f"{metadata['namespace']}_{metadata['name']}"
        directory = self.state_dir / f"{kind.name}s"
        served = ServedPod(
            kind=kind,
            uid=metadata["uid"],
            namespace=metadata["namespace"],
            name=metadata["name"],
            place=PodPlace(root=directory / slug, ip=pod["status"]["podIP"], python=self.python),
            log=self.state_dir / "logs" / f"{kind.name}-{slug}.log",
            pid_file=directory / f"{slug}.pid",
        )
        self.served[served.uid] = served
        try:
            served.launch = kind.launch(pod, served.place)
        except PodSpecError as error:
            log.error("%s stays not Ready: the testbed cannot run it: %s", served.label, error)
        return served

    def _tend(
        self, served: ServedPod, launch: Launch, config_maps: dict[tuple[str, str], dict[str, Any] | None]
    ) -> None:
        try:
            self._sync_files(served, launch, config_maps)
        except MissingConfigMapError as error:
            # A running process keeps its last files, as a kubelet keeps a mounted volume.
            if served.process is None:
                self._wait(served, f"{error} in namespace {served.namespace}; the pod stays not Ready")
                return
        now = time.monotonic()
        if served.process is None:
            if now >= served.next_start:
                self._start(served, launch)
            return
        exit_code = served.process.poll()
        if exit_code is not None:
            self._exited(served, exit_code)
            return
        if launch.while_running is not None:
            launch.while_running()
        if now >= served.next_probe:
            self._probe(served, launch)

    def _sync_files(
        self, served: ServedPod, launch: Launch, config_maps: dict[tuple[str, str], dict[str, Any] | None]
    ) -> None:
        if not launch.mounts:
            return
        for mount in launch.mounts:
            key = (served.namespace, mount.config_map)
            if key not in config_maps:
                config_maps[key] = objects.read(
                    self.api, "v1", "ConfigMap", mount.config_map, namespace=served.namespace
                )
        files = mounted_files(
            launch.mounts,
            {mount.config_map: config_maps[(served.namespace, mount.config_map)] for mount in launch.mounts},
        )
        changed = write_files(served.place.root, launch.files_for_process(files), launch.mounts)
        if changed and served.process is not None:
            log.info("%s: configuration files updated from their ConfigMaps", served.label)

    def _start(self, served: ServedPod, launch: Launch) -> None:
        try:
            kubeconfig = service_account_kubeconfig(
                self.kubeconfig,
                namespace=served.namespace,
                name=launch.service_account,
                path=served.place.kubeconfig,
            )
        except ApiException as error:
            served.next_start = time.monotonic() + RESTART_BACKOFF_FIRST_S
            self._wait(
                served,
                f"no token for ServiceAccount {served.namespace}/{launch.service_account}: "
                f"{error.status} {error.reason}",
            )
            return
        served.log.parent.mkdir(parents=True, exist_ok=True)
        with served.log.open("ab") as out:
            served.process = subprocess.Popen(
                launch.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=process_environment(os.environ, launch, kubeconfig=kubeconfig),
                start_new_session=True,
                preexec_fn=_stop_with_parent,
            )
        served.pid_file.write_text(f"{served.process.pid}\n")
        served.started_at = served.next_probe = time.monotonic()
        served.probe_failures = 0
        served.waiting_for = None
        log.info(
            "%s: started pid %s at %s as ServiceAccount %s (restarts %d); log %s",
            served.label,
            served.process.pid,
            served.place.ip,
            launch.service_account,
            served.restarts,
            served.log,
        )
        for note in launch.notes:
            log.info("%s: %s", served.label, note)

    def _exited(self, served: ServedPod, exit_code: int) -> None:
        if time.monotonic() - served.started_at >= RESTART_BACKOFF_RESET_S:
            served.restarts = 0  # a long clean run forgives earlier crashes, as the kubelet does
        served.restarts += 1
        delay = restart_delay(served.restarts)
        log.warning(
            "%s: process exited with code %s; restart %d in %.0fs (last lines in %s)",
            served.label,
            exit_code,
            served.restarts,
            delay,
            served.log,
        )
        served.process = None
        served.pid_file.unlink(missing_ok=True)
        served.next_start = time.monotonic() + delay
        served.ready = False
        set_pod_ready(
            self.api,
            namespace=served.namespace,
            name=served.name,
            uid=served.uid,
            ready=False,
            restart_count=served.restarts,
        )

    def _probe(self, served: ServedPod, launch: Launch) -> None:
        check = launch.readiness
        passed = check is None or _http_ok(f"http://{served.place.ip}:{check.port}{check.path}")
        if passed:
            served.probe_failures = 0
            if not served.ready and set_pod_ready(
                self.api, namespace=served.namespace, name=served.name, uid=served.uid, ready=True
            ):
                served.ready = True
                log.info("%s Ready: its readiness probe passed", served.label)
        elif served.ready:
            served.probe_failures += 1
            threshold = check.failure_threshold if check is not None else 1
            if served.probe_failures >= threshold:
                served.ready = False
                set_pod_ready(
                    self.api, namespace=served.namespace, name=served.name, uid=served.uid, ready=False
                )
                log.warning("%s not Ready: %d readiness probes failed", served.label, threshold)
        # Until Ready, probe at every poll rather than every periodSeconds, so a test does not
        # wait out a period that only matters for a pod already serving.
        period = check.period_s if check is not None and served.ready else POLL_SECONDS
        served.next_probe = time.monotonic() + period

    def _wait(self, served: ServedPod, reason: str) -> None:
        if reason != served.waiting_for:
            served.waiting_for = reason
            log.warning("%s not started: %s", served.label, reason)

    def _stop(self, uid: str) -> None:
        served = self.served.pop(uid)
        if served.process is not None:
            _stop_process(served.process)
            log.info("%s: pod gone, stopped pid %s", served.label, served.process.pid)
        served.pid_file.unlink(missing_ok=True)
        shutil.rmtree(served.place.root, ignore_errors=True)


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM by pid, then SIGKILL after a grace period; always reaped."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_GRACE_S)


def _stop_with_parent() -> None:
    """Runs in the child before exec: ask Linux to SIGTERM it when the launcher dies, so a
    launcher killed without a chance to clean up leaves no process behind."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m thrifty.testbed.process_pods", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True, help="the testbed's admin kubeconfig")
    parser.add_argument("--state-dir", type=Path, required=True, help="the testbed's state directory")
    parser.add_argument(
        "--prometheus-url",
        default=None,
        help="the testbed's Prometheus, given to operator pods as THRIFTY_PROMETHEUS_URL in place of the "
        "chart's in-cluster Service name (default: the pod's value, unchanged)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    kinds = (ROUTER_PODS, operator_pods(prometheus_url=args.prometheus_url))
    Launcher(kubeconfig=args.kubeconfig, state_dir=args.state_dir, kinds=kinds).run(stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
