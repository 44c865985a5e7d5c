"""The children of an InferenceRouter: its configuration (router.json in a ConfigMap), the router
Deployment and Service, and the ServiceAccount and RoleBinding that let it watch EndpointSlices.

    config = router_config(router, {"llama-8b": model_backend(model_8b), ...})
    children = desired_router_children(router, config, image=..., cluster_role="thrifty-router")
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from thrifty.api import InferenceModel, InferenceRouter, ModelBackend, RouterConfig
from thrifty.render.engine_args import ENGINE_PORT
from thrifty.render.labels import MANAGED_BY, ROLE_LABEL, ROUTER_LABEL
from thrifty.render.manifests import owner_references, render_template

ROUTER_PORT: Final = 8000
CONFIG_KEY: Final = "router.json"
CONFIG_DIR: Final = "/etc/thrifty/router"
CLASSIFIER_DIR: Final = "/etc/thrifty/classifier"
DEFAULT_ROUTER_IMAGE: Final = (
    "thrifty/thrifty:0.1.0@sha256:0000000000000000000000000000000000000000000000000000000000000000"
)
"""A placeholder, like the chart's default image: the chart passes the real one (THRIFTY_ROUTER_IMAGE)."""
DEFAULT_ROUTER_CLUSTER_ROLE: Final = "thrifty-router"
"""The ClusterRole the chart creates for routers (list and watch EndpointSlices)."""


def router_selector(router: InferenceRouter) -> dict[str, str]:
    """The immutable selector of the router's Deployment and Service."""
    return {ROUTER_LABEL: router.name, ROLE_LABEL: "router"}


def router_labels(router: InferenceRouter) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "thrifty-router",
        "app.kubernetes.io/instance": router.name,
        "app.kubernetes.io/component": "router",
        **MANAGED_BY,
        **router_selector(router),
    }


def router_config_map_name(router: InferenceRouter) -> str:
    return f"{router.name}-router"


def router_service_account_name(router: InferenceRouter) -> str:
    return f"{router.name}-router"


def router_endpoint(router: InferenceRouter) -> str:
    """The base URL clients use inside the cluster."""
    return f"http://{router.name}.{router.namespace}.svc:{ROUTER_PORT}/v1"


def model_backend(model: InferenceModel) -> ModelBackend:
    """How the router reaches a model: its Service, served name, the live per-replica cap (the
    control loop's effective cap when it publishes one, else the engine's batch limit), and the
    model to wake when it may scale to zero."""
    status = model.status
    effective = status.max_num_seqs.effective if status and status.max_num_seqs else None
    scaling = model.spec.scaling
    to_zero = model.spec.scaling_enabled and scaling is not None and scaling.replicas.min == 0
    return ModelBackend(
        service=model.name,
        served_name=model.served_name,
        port=ENGINE_PORT,
        max_in_flight_per_replica=effective or model.spec.batching.max_num_seqs,
        wake_model=model.name if to_zero else None,
    )


def router_config(router: InferenceRouter, backends: Mapping[str, ModelBackend]) -> RouterConfig:
    """router.json; ``backends`` has one entry per model a tier names (pydantic refuses a gap)."""
    classifier = router.spec.selection.classifier
    return RouterConfig(
        name=router.name,
        namespace=router.namespace,
        generation=router.generation,
        spec=router.spec,
        models={tier.model: backends[tier.model] for tier in router.spec.tiers if tier.model in backends},
        classifier_path=f"{CLASSIFIER_DIR}/{classifier.config_map.key}" if classifier else None,
    )


def _common(router: InferenceRouter) -> dict[str, Any]:
    return {
        "name": router.name,
        "namespace": router.namespace,
        "labels": router_labels(router),
        "selector": router_selector(router),
        "owner_references": owner_references(router),
        "port": ROUTER_PORT,
        "service_account": router_service_account_name(router),
        "config_map": router_config_map_name(router),
    }


def _volumes(router: InferenceRouter) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": router_config_map_name(router)}},
        {"name": "tmp", "emptyDir": {}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    classifier = router.spec.selection.classifier
    if classifier is not None:
        # Mounted whole (no subPath), so an updated classifier reaches the running router.
        volumes.append({"name": "classifier", "configMap": {"name": classifier.config_map.name}})
        mounts.append({"name": "classifier", "mountPath": CLASSIFIER_DIR, "readOnly": True})
    return volumes, mounts


def desired_router_config_map(router: InferenceRouter, config: RouterConfig) -> dict[str, Any]:
    return render_template(
        "router-configmap.yaml.j2",
        **_common(router),
        config_key=CONFIG_KEY,
        config_json=config.model_dump_json(by_alias=True, exclude_none=True, indent=2),
    )


def desired_router_deployment(router: InferenceRouter, *, image: str) -> dict[str, Any]:
    volumes, mounts = _volumes(router)
    args = ["router", "--config", f"{CONFIG_DIR}/{CONFIG_KEY}", "--port", str(ROUTER_PORT)]
    return render_template(
        "router-deployment.yaml.j2",
        **_common(router),
        replicas=router.spec.replicas,
        image=image,
        args=args,
        volumes=volumes,
        volume_mounts=mounts,
    )


def desired_router_access(router: InferenceRouter, *, cluster_role: str) -> list[dict[str, Any]]:
    """[ServiceAccount, RoleBinding]."""
    common = _common(router)
    return [
        render_template("router-serviceaccount.yaml.j2", **common),
        render_template("router-rolebinding.yaml.j2", **common, cluster_role=cluster_role),
    ]


def desired_router_children(
    router: InferenceRouter,
    config: RouterConfig,
    *,
    image: str = DEFAULT_ROUTER_IMAGE,
    cluster_role: str = DEFAULT_ROUTER_CLUSTER_ROLE,
) -> list[dict[str, Any]]:
    """Everything one InferenceRouter owns, in apply order: the identity and the configuration
    before the pods that need them."""
    return [
        *desired_router_access(router, cluster_role=cluster_role),
        desired_router_config_map(router, config),
        desired_router_deployment(router, image=image),
        render_template("service.yaml.j2", **_common(router)),
    ]
