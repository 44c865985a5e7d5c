"""The router launcher: a real `thrifty router` process for every router pod, at the pod's own IP.

kwok starts a router pod (label thrifty.dev/role=router) Running with an IP but not Ready
(testbed/kwok-stages.yaml). This process plays the kubelet for it: it copies the pod's configMap
volumes into a directory of the pod's own and keeps them in sync, gets a token for the pod's
ServiceAccount (so the router's RBAC is the cluster's, not the admin's), starts the container's
command bound to the pod IP, turns the pod Ready when its readiness probe passes, restarts the
process with a growing backoff when it exits, and stops it, by pid, when the pod goes away.

    python -m thrifty.testbed.routers --kubeconfig <admin kubeconfig> --state-dir <testbed state>

Files: ``<state>/routers/<namespace>_<pod>/`` is the pod's root (its mounts, and the
ServiceAccount kubeconfig where a pod has its token), ``<state>/routers/<namespace>_<pod>.pid``
the running process, ``<state>/logs/router-<namespace>_<pod>.log`` its output.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from thrifty.api import RouterConfig
from thrifty.k8s import objects
from thrifty.testbed.kube import service_account_kubeconfig
from thrifty.testbed.pod_files import MissingConfigMapError, PodSpecError, mounted_files, write_files
from thrifty.testbed.pod_readiness import set_pod_ready
from thrifty.testbed.router_pod import (
    ROUTER_SELECTOR,
    RouterContainer,
    command_line,
    files_for_process,
    router_container,
)

log = logging.getLogger("thrifty.routers")

POLL_SECONDS = 0.5
# The kubelet's restart backoff doubles from 10 s up to 5 min and resets after 10 min of clean
# running. Same shape here, starting at 1 s so that a test sees a restart within seconds.
RESTART_BACKOFF_FIRST_S = 1.0
RESTART_BACKOFF_MAX_S = 300.0
RESTART_BACKOFF_RESET_S = 600.0
# How often to ask the apiserver again whether a router may watch its EndpointSlices, while it may not.
ACCESS_RECHECK_S = 5.0
STOP_GRACE_S = 10.0
SERVICE_ACCOUNT_DIR = "var/run/secrets/kubernetes.io/serviceaccount"


def restart_delay(restarts: int) -> float:
    """Seconds to wait before the ``restarts``-th restart (1-based): doubling, capped."""
    return min(RESTART_BACKOFF_FIRST_S * 2.0 ** max(restarts - 1, 0), RESTART_BACKOFF_MAX_S)


@dataclass
class ServedRouter:
    """One router pod and the process that serves it."""

    uid: str
    namespace: str
    name: str
    ip: str
    root: Path
    log: Path
    pid_file: Path
    container: RouterContainer | None = None
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    ready: bool = False
    restarts: int = 0
    next_start: float = 0.0
    next_probe: float = 0.0
    probe_failures: int = 0
    waiting_for: str | None = None
    """Why the process is not running yet; logged once each time it changes."""
    endpoint_access: bool | None = None
    """Whether the ServiceAccount may list and watch EndpointSlices (None: not known yet)."""
    next_access_check: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class Launcher:
    """Keeps one `thrifty router` process per live router pod."""

    kubeconfig: Path
    state_dir: Path
    python: str = sys.executable
    served: dict[str, ServedRouter] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.api: client.ApiClient = config.new_client_from_config(config_file=str(self.kubeconfig))  # type: ignore[no-untyped-call]

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.sync()
            except Exception:  # the API may blip; keep serving what runs and retry
                log.exception("router launcher sync failed")
            stop.wait(POLL_SECONDS)
        for uid in list(self.served):
            self._stop(uid)

    def sync(self) -> None:
        pods = objects.list_objects(self.api, "v1", "Pod", namespace=None, label_selector=ROUTER_SELECTOR)
        live = {
            pod["metadata"]["uid"]: pod
            for pod in pods
            if not pod["metadata"].get("deletionTimestamp")
            and pod.get("status", {}).get("phase") == "Running"
            and pod["status"].get("podIP")
        }
        for uid in [uid for uid in self.served if uid not in live]:
            self._stop(uid)
        config_maps: dict[tuple[str, str], dict[str, Any] | None] = {}
        for uid, pod in live.items():
            served = self.served.get(uid) or self._adopt(pod)
            if served.container is None:
                continue
            try:
                self._tend(served, config_maps)
            except Exception:  # one pod's trouble must not stop the others
                log.exception("router %s: sync failed", served.key)

    # -- one pod --------------------------------------------------------------------------------

    def _adopt(self, pod: dict[str, Any]) -> ServedRouter:
        metadata = pod["metadata"]
        slug = f"{metadata['namespace']}_{metadata['name']}"
        served = ServedRouter(
            uid=metadata["uid"],
            namespace=metadata["namespace"],
            name=metadata["name"],
            ip=pod["status"]["podIP"],
            root=self.state_dir / "routers" / slug,
            log=self.state_dir / "logs" / f"router-{slug}.log",
            pid_file=self.state_dir / "routers" / f"{slug}.pid",
        )
        self.served[served.uid] = served
        try:
            served.container = router_container(pod)
        except PodSpecError as error:
            log.error("router %s stays not Ready: the testbed cannot run it: %s", served.key, error)
        return served

    def _tend(self, served: ServedRouter, config_maps: dict[tuple[str, str], dict[str, Any] | None]) -> None:
        container = served.container
        assert container is not None
        try:
            self._sync_files(served, container, config_maps)
        except MissingConfigMapError as error:
            # A running process keeps its last files, as a kubelet keeps a mounted volume.
            if served.process is None:
                self._wait(served, f"{error} in namespace {served.namespace}; the pod stays not Ready")
                return
        now = time.monotonic()
        if served.process is None:
            if now >= served.next_start:
                self._start(served, container)
            return
        exit_code = served.process.poll()
        if exit_code is not None:
            self._exited(served, exit_code)
            return
        self._check_endpoint_access(served, container)
        if now >= served.next_probe:
            self._probe(served, container)

    def _sync_files(
        self,
        served: ServedRouter,
        container: RouterContainer,
        config_maps: dict[tuple[str, str], dict[str, Any] | None],
    ) -> None:
        for mount in container.mounts:
            key = (served.namespace, mount.config_map)
            if key not in config_maps:
                config_maps[key] = objects.read(
                    self.api, "v1", "ConfigMap", mount.config_map, namespace=served.namespace
                )
        files = mounted_files(
            container.mounts,
            {
                mount.config_map: config_maps[(served.namespace, mount.config_map)]
                for mount in container.mounts
            },
        )
        changed = write_files(served.root, files_for_process(files, container, served.root), container.mounts)
        if changed and served.process is not None:
            log.info("router %s: configuration files updated from their ConfigMaps", served.key)

    def _start(self, served: ServedRouter, container: RouterContainer) -> None:
        try:
            kubeconfig = service_account_kubeconfig(
                self.kubeconfig,
                namespace=served.namespace,
                name=container.service_account,
                path=served.root / SERVICE_ACCOUNT_DIR / "kubeconfig",
            )
        except ApiException as error:
            served.next_start = time.monotonic() + RESTART_BACKOFF_FIRST_S
            self._wait(
                served,
                f"no token for ServiceAccount {served.namespace}/{container.service_account}: "
                f"{error.status} {error.reason}",
            )
            return
        env = {key: value for key, value in os.environ.items() if not key.startswith("KUBERNETES_")}
        env |= dict(container.env)
        env["KUBECONFIG"] = str(kubeconfig)
        argv = command_line(container, python=self.python, root=served.root, host=served.ip)
        served.log.parent.mkdir(parents=True, exist_ok=True)
        with served.log.open("ab") as out:
            served.process = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
                preexec_fn=_stop_with_parent,
            )
        served.pid_file.write_text(f"{served.process.pid}\n")
        served.started_at = served.next_probe = time.monotonic()
        served.probe_failures = 0
        served.waiting_for = None
        served.endpoint_access, served.next_access_check = None, 0.0
        log.info(
            "router %s: started pid %s at %s:%s as ServiceAccount %s (restarts %d); log %s",
            served.key,
            served.process.pid,
            served.ip,
            container.port,
            container.service_account,
            served.restarts,
            served.log,
        )

    def _exited(self, served: ServedRouter, exit_code: int) -> None:
        if time.monotonic() - served.started_at >= RESTART_BACKOFF_RESET_S:
            served.restarts = 0  # a long clean run forgives earlier crashes, as the kubelet does
        served.restarts += 1
        delay = restart_delay(served.restarts)
        log.warning(
            "router %s: process exited with code %s; restart %d in %.0fs (last lines in %s)",
            served.key,
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

    def _probe(self, served: ServedRouter, container: RouterContainer) -> None:
        check = container.readiness
        passed = check is None or _http_ok(f"http://{served.ip}:{check.port}{check.path}")
        if passed:
            served.probe_failures = 0
            if not served.ready and set_pod_ready(
                self.api, namespace=served.namespace, name=served.name, uid=served.uid, ready=True
            ):
                served.ready = True
                log.info("router %s Ready: its readiness probe passed", served.key)
        elif served.ready:
            served.probe_failures += 1
            threshold = check.failure_threshold if check is not None else 1
            if served.probe_failures >= threshold:
                served.ready = False
                set_pod_ready(
                    self.api, namespace=served.namespace, name=served.name, uid=served.uid, ready=False
                )
                log.warning("router %s not Ready: %d readiness probes failed", served.key, threshold)
        # Until Ready, probe at every poll rather than every periodSeconds, so a test does not
        # wait out a period that only matters for a pod already serving.
        period = check.period_s if check is not None and served.ready else POLL_SECONDS
        served.next_probe = time.monotonic() + period

    def _check_endpoint_access(self, served: ServedRouter, container: RouterContainer) -> None:
        """Say plainly in this log when the router's ServiceAccount may not watch EndpointSlices:
        the router then runs, answers /health, and finds no replica."""
        now = time.monotonic()
        if served.endpoint_access or now < served.next_access_check:
            return
        served.next_access_check = now + ACCESS_RECHECK_S
        namespace = self._router_namespace(served, container) or served.namespace
        allowed = _may_watch_endpoint_slices(served.root / SERVICE_ACCOUNT_DIR / "kubeconfig", namespace)
        if allowed is None or allowed == served.endpoint_access:
            return
        served.endpoint_access = allowed
        account = f"system:serviceaccount:{served.namespace}:{container.service_account}"
        if allowed:
            log.info("router %s: %s may list and watch EndpointSlices in %s", served.key, account, namespace)
        else:
            log.error(
                "router %s: %s is forbidden to list/watch discovery.k8s.io endpointslices in %s, so the "
                "router finds no replica; bind it to a ClusterRole that grants them with a RoleBinding in "
                "%s (the operator binds ClusterRole thrifty-router, or $THRIFTY_ROUTER_CLUSTER_ROLE)",
                served.key,
                account,
                namespace,
                namespace,
            )

    def _router_namespace(self, served: ServedRouter, container: RouterContainer) -> str | None:
        """The namespace the router watches (router.json's `namespace`), if the file is valid."""
        path = served.root / container.config_path.relative_to("/")
        try:
            return RouterConfig.model_validate_json(path.read_bytes()).namespace
        except (OSError, ValueError):
            return None

    def _wait(self, served: ServedRouter, reason: str) -> None:
        if reason != served.waiting_for:
            served.waiting_for = reason
            log.warning("router %s not started: %s", served.key, reason)

    def _stop(self, uid: str) -> None:
        served = self.served.pop(uid)
        if served.process is not None:
            _stop_process(served.process)
            log.info("router %s: pod gone, stopped pid %s", served.key, served.process.pid)
        served.pid_file.unlink(missing_ok=True)
        shutil.rmtree(served.root, ignore_errors=True)


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
    launcher killed without a chance to clean up leaves no router behind."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _may_watch_endpoint_slices(kubeconfig: Path, namespace: str) -> bool | None:
    """Ask the apiserver, as the ServiceAccount, whether it may list and watch EndpointSlices;
    None when the question itself failed (the answer only feeds the log, so it never raises)."""
    try:
        api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    except Exception as error:
        log.debug("no client for the access review: %s", error)
        return None
    authorization: Any = client.AuthorizationV1Api(api)
    try:
        return all(
            bool(
                authorization.create_self_subject_access_review(
                    _access_review(verb, namespace)
                ).status.allowed
            )
            for verb in ("list", "watch")
        )
    except Exception as error:
        log.debug("access review failed: %s", error)
        return None
    finally:
        api.close()


def _access_review(verb: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {
            "resourceAttributes": {
                "group": "discovery.k8s.io",
                "resource": "endpointslices",
                "verb": verb,
                "namespace": namespace,
            }
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m thrifty.testbed.routers", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True, help="the testbed's admin kubeconfig")
    parser.add_argument("--state-dir", type=Path, required=True, help="the testbed's state directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    Launcher(kubeconfig=args.kubeconfig, state_dir=args.state_dir).run(stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
