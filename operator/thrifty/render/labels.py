"""Labels that tie children to their InferenceModel or InferenceRouter; selectors never change."""

from __future__ import annotations

from thrifty.api import InferenceModel

MODEL_LABEL = "thrifty.dev/model"
ROLE_LABEL = "thrifty.dev/role"
ROUTER_LABEL = "thrifty.dev/router"
MANAGED_BY = {"app.kubernetes.io/managed-by": "thrifty"}


def model_selector(model: InferenceModel) -> dict[str, str]:
    """The immutable selector of the model's Deployment, PDB and Service."""
    return {MODEL_LABEL: model.name, ROLE_LABEL: "engine"}


def model_labels(model: InferenceModel) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "vllm",
        "app.kubernetes.io/instance": model.name,
        "app.kubernetes.io/component": "inference-engine",
        **MANAGED_BY,
        **model_selector(model),
    }
