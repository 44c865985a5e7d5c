"""One API client per process, from the pod's service account or the current kubeconfig."""

from __future__ import annotations

import os
from functools import cache

from kubernetes import client, config


@cache
def api_client() -> client.ApiClient:
    """In a pod, the mounted service account; elsewhere `$KUBECONFIG` or ~/.kube/config."""
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        return client.ApiClient()
    kubeconfig = os.environ.get("KUBECONFIG")
    api: client.ApiClient = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    return api
