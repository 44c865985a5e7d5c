"""What the process-pod launcher needs to know about one kind of pod, and about one pod of it.

The launcher (:mod:`thrifty.testbed.process_pods`) plays the kubelet for pods that kwok leaves
Running but not Ready: the router pods and the chart's operator pod. It runs the same loop for
both; a :class:`PodKind` says which pods are its own and turns each into a :class:`Launch`, the
process that stands in for the pod's container.

    kind = PodKind(name="router", selector="thrifty.dev/role=router", launch=router_launch)
    launch = kind.launch(pod, PodPlace(root=..., ip="10.244.0.7", python=sys.executable))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from thrifty.testbed.pod_container import HealthCheck
from thrifty.testbed.pod_files import ConfigMapMount

SERVICE_ACCOUNT_DIR = PurePosixPath("/var/run/secrets/kubernetes.io/serviceaccount")
"""Where a pod finds its ServiceAccount token; the launcher puts the pod's kubeconfig there."""

Files = Mapping[PurePosixPath, bytes]
"""In-pod path -> content of the files a pod's configMap volumes show."""


@dataclass(frozen=True)
class PodPlace:
    """Where a pod's process lives on this machine."""

    root: Path
    """The pod's own directory: its configMap volumes and its ServiceAccount kubeconfig, at the
    paths the container would see them, under this root."""
    ip: str
    """The pod's IP, local inside the testbed's network namespace."""
    python: str
    """The interpreter that runs `thrifty` (this checkout's, in place of the image's)."""

    @property
    def kubeconfig(self) -> Path:
        """The kubeconfig acting as the pod's ServiceAccount (written by the launcher at start)."""
        return self.root / SERVICE_ACCOUNT_DIR.relative_to("/") / "kubeconfig"


def _unchanged(files: Files) -> Files:
    return files


@dataclass(frozen=True)
class Launch:
    """The local process that stands in for one pod's container."""

    argv: tuple[str, ...]
    """The full command line (``python -m thrifty ...``)."""
    env: tuple[tuple[str, str], ...]
    """The container's environment, fieldRefs filled; the launcher adds KUBECONFIG."""
    service_account: str
    """The pod's ServiceAccount: the process acts as it towards the apiserver."""
    readiness: HealthCheck | None
    """The readiness probe, probed at the pod's IP; None: Ready as soon as the process runs."""
    mounts: tuple[ConfigMapMount, ...] = ()
    """The container's configMap volumes, kept in sync under the pod's root."""
    files_for_process: Callable[[Files], Files] = _unchanged
    """The mounted files as the local process needs them (a path inside a file rehomed, say)."""
    while_running: Callable[[], None] | None = None
    """Called at every poll while the process runs: a kind's own diagnostics for the launcher's
    log (it must not raise for what it cannot find out)."""
    notes: tuple[str, ...] = ()
    """Liberties taken with the pod spec, logged when the process starts."""


@dataclass(frozen=True)
class PodKind:
    """One kind of pod that the launcher serves by a local process."""

    name: str
    """Its name in log lines and paths: ``<state>/<name>s/<namespace>_<pod>/`` is a pod's root,
    ``<state>/logs/<name>-<namespace>_<pod>.log`` its process's output."""
    selector: str
    """The label selector that finds these pods (kwok leaves the same pods not Ready:
    testbed/kwok-stages.yaml)."""
    launch: Callable[[Mapping[str, Any], PodPlace], Launch]
    """Reads a pod into its launch; raises PodSpecError, naming the field, for what the testbed
    cannot run."""
