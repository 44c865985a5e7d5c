"""Pure functions from an InferenceModel to the Kubernetes objects that serve it.

    children = desired_children(model)              # [Deployment, Service, PodDisruptionBudget]
    children = desired_router_children(router, router_config(router, backends))
    args = engine_args(model)                       # the vLLM command line, validated

Nothing here performs I/O; the jinja2 templates in ``templates/`` are the only templates in the
project. Errors a person must fix raise :class:`thrifty.vllm_args.InvalidEngineArgs`.
"""

from thrifty.render.engine_args import ENGINE_PORT, engine_args
from thrifty.render.labels import model_labels, model_selector
from thrifty.render.manifests import (
    desired_children,
    desired_deployment,
    desired_pod_disruption_budget,
    desired_service,
)
from thrifty.render.router import (
    DEFAULT_ROUTER_CLUSTER_ROLE,
    DEFAULT_ROUTER_IMAGE,
    desired_router_children,
    model_backend,
    router_config,
    router_endpoint,
    router_selector,
)

__all__ = [
    "DEFAULT_ROUTER_CLUSTER_ROLE",
    "DEFAULT_ROUTER_IMAGE",
    "ENGINE_PORT",
    "desired_children",
    "desired_deployment",
    "desired_pod_disruption_budget",
    "desired_router_children",
    "desired_service",
    "engine_args",
    "model_backend",
    "model_labels",
    "model_selector",
    "router_config",
    "router_endpoint",
    "router_selector",
]
