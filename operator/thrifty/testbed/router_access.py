"""Say plainly in the launcher's log when a router pod's ServiceAccount may not watch EndpointSlices.

Such a router still runs and answers /health (it fails open to the tier Services), so its pod
turns Ready and nothing looks wrong, but it finds no replica. The watch asks the apiserver, as the
ServiceAccount, with SelfSubjectAccessReviews, and logs each change of the answer once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config

from thrifty.api import RouterConfig

log = logging.getLogger("thrifty.process_pods")

RECHECK_S = 5.0
"""How often to ask again while the answer is "no" (or not known yet)."""


@dataclass
class EndpointAccessWatch:
    """Called at every poll while a router's process runs (a :class:`Launch`'s ``while_running``)."""

    key: str
    """``namespace/pod`` for the log."""
    account: str
    """The ServiceAccount's user name, ``system:serviceaccount:<namespace>:<name>``."""
    kubeconfig: Path
    """The kubeconfig acting as that ServiceAccount."""
    config_path: Path
    """router.json under the pod's root: its `namespace` is where the router watches."""
    pod_namespace: str
    """Where the router watches while router.json cannot be read."""
    allowed: bool | None = None
    next_check: float = 0.0

    def __call__(self) -> None:
        now = time.monotonic()
        if self.allowed or now < self.next_check:
            return
        self.next_check = now + RECHECK_S
        namespace = self._router_namespace() or self.pod_namespace
        allowed = may_watch_endpoint_slices(self.kubeconfig, namespace)
        if allowed is None or allowed == self.allowed:
            return
        self.allowed = allowed
        if allowed:
            log.info(
                "router %s: %s may list and watch EndpointSlices in %s", self.key, self.account, namespace
            )
        else:
            log.error(
                "router %s: %s is forbidden to list/watch discovery.k8s.io endpointslices in %s, so the "
                "router finds no replica; bind it to a ClusterRole that grants them with a RoleBinding in "
                "%s (the operator binds ClusterRole thrifty-router, or $THRIFTY_ROUTER_CLUSTER_ROLE)",
                self.key,
                self.account,
                namespace,
                namespace,
            )

    def _router_namespace(self) -> str | None:
        """The namespace the router watches (router.json's `namespace`), if the file is valid."""
        try:
            return RouterConfig.model_validate_json(self.config_path.read_bytes()).namespace
        except (OSError, ValueError):
            return None


def may_watch_endpoint_slices(kubeconfig: Path, namespace: str) -> bool | None:
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
