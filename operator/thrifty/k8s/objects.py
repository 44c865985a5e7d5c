"""Generic reads and writes of the object kinds Thrifty owns or watches.

Paths are built from apiVersion and kind through a small table, so one server-side-apply function
serves every child kind without the discovery round-trips of the dynamic client.
"""

from __future__ import annotations

import json
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

FIELD_MANAGER = "thrifty-operator"

_PLURALS: dict[tuple[str, str], str] = {
    ("apps/v1", "Deployment"): "deployments",
    ("v1", "Service"): "services",
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Pod"): "pods",
    ("v1", "Node"): "nodes",
    ("v1", "Event"): "events",
    ("v1", "ServiceAccount"): "serviceaccounts",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rolebindings",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("discovery.k8s.io/v1", "EndpointSlice"): "endpointslices",
    ("thrifty.dev/v1alpha1", "InferenceModel"): "inferencemodels",
    ("thrifty.dev/v1alpha1", "InferenceRouter"): "inferencerouters",
}


def object_path(api_version: str, kind: str, *, namespace: str | None, name: str | None = None) -> str:
    try:
        plural = _PLURALS[(api_version, kind)]
    except KeyError:
        raise ValueError(f"Thrifty does not manage {kind} ({api_version})") from None
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = prefix + (f"/namespaces/{namespace}" if namespace else "") + f"/{plural}"
    return path + (f"/{name}" if name else "")


def _call(
    api: client.ApiClient,
    method: str,
    path: str,
    *,
    body: Any = None,
    content_type: str = "application/json",
    query: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    request = api.param_serialize(
        method,
        path,
        query_params=query or [],
        header_params={"Content-Type": content_type, "Accept": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api.call_api(*request)
    response.read()  # type: ignore[no-untyped-call]
    if not 200 <= response.status <= 299:
        api.response_deserialize(response, {})  # raises ApiException with the server's message
    return cast(dict[str, Any], json.loads(response.data or b"{}"))


def server_side_apply(api: client.ApiClient, obj: dict[str, Any]) -> dict[str, Any]:
    """Apply ``obj`` as Thrifty's field manager, taking over fields another manager set.

    An apply that changes nothing is a no-op on the server: no new resourceVersion, no watch event.
    That is what keeps a converged model at zero writes on resync.
    """
    metadata = obj["metadata"]
    path = object_path(
        obj["apiVersion"], obj["kind"], namespace=metadata.get("namespace"), name=metadata["name"]
    )
    return _call(
        api,
        "PATCH",
        path,
        body=obj,
        content_type="application/apply-patch+yaml",
        query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
    )


def read(
    api: client.ApiClient, api_version: str, kind: str, name: str, *, namespace: str | None
) -> dict[str, Any] | None:
    """The object, or None when it does not exist."""
    try:
        return _call(api, "GET", object_path(api_version, kind, namespace=namespace, name=name))
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def list_objects(
    api: client.ApiClient, api_version: str, kind: str, *, namespace: str | None, label_selector: str = ""
) -> list[dict[str, Any]]:
    query = [("labelSelector", label_selector)] if label_selector else []
    result = _call(api, "GET", object_path(api_version, kind, namespace=namespace), query=query)
    items = cast(list[dict[str, Any]], result.get("items", []))
    for item in items:  # list items come without their type; callers pass them on as whole objects
        item.setdefault("apiVersion", api_version)
        item.setdefault("kind", kind)
    return items


class StaleObjectError(Exception):
    """The object changed since it was read: a guarded write was refused (HTTP 409)."""


def patch_status(
    api: client.ApiClient, obj: dict[str, Any], status: dict[str, Any], *, if_unchanged: bool = False
) -> dict[str, Any]:
    """Merge-patch the status subresource; never touches spec or metadata.

    With ``if_unchanged`` the patch carries ``obj``'s resourceVersion, and the apiserver refuses
    it (`StaleObjectError`) when another writer got there first: status computed from a stale
    read must not overwrite what that writer stored (the reconcile and the control loop both
    write a model's status)."""
    metadata = obj["metadata"]
    path = object_path(
        obj["apiVersion"], obj["kind"], namespace=metadata.get("namespace"), name=metadata["name"]
    )
    body: dict[str, Any] = {"status": status}
    if if_unchanged:
        body["metadata"] = {"resourceVersion": metadata["resourceVersion"]}
    # Named, so that managedFields say who owns status (else the client's user agent).
    try:
        return _call(
            api,
            "PATCH",
            path + "/status",
            body=body,
            content_type="application/merge-patch+json",
            query=[("fieldManager", FIELD_MANAGER)],
        )
    except ApiException as error:
        if error.status == 409:
            raise StaleObjectError(f"{obj['kind']} {metadata.get('namespace')}/{metadata['name']}") from None
        raise


def delete(api: client.ApiClient, obj: dict[str, Any]) -> None:
    """Delete ``obj`` (by its kind, namespace and name); one already gone is fine."""
    metadata = obj["metadata"]
    path = object_path(
        obj["apiVersion"], obj["kind"], namespace=metadata.get("namespace"), name=metadata["name"]
    )
    try:
        _call(api, "DELETE", path)
    except ApiException as error:
        if error.status != 404:
            raise


def create(api: client.ApiClient, obj: dict[str, Any]) -> dict[str, Any]:
    metadata = obj["metadata"]
    path = object_path(obj["apiVersion"], obj["kind"], namespace=metadata.get("namespace"))
    return _call(api, "POST", path, body=obj)
