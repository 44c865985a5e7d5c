"""The InferenceRouter CustomResourceDefinition, generated from the pydantic models like
InferenceModel's (`thrifty crds` writes both)."""

from __future__ import annotations

from typing import Any

from thrifty.api.inference_router import (
    ROUTER_KIND,
    ROUTER_PLURAL,
    ROUTER_SHORT_NAMES,
    ROUTER_SINGULAR,
    InferenceRouterSpec,
)
from thrifty.api.router_status import InferenceRouterStatus
from thrifty.api.schema import crd_object

ROUTER_PRINTER_COLUMNS: list[dict[str, Any]] = [
    {
        "name": "Ready",
        "type": "string",
        "description": "Status of the Ready condition",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
    {
        "name": "Tiers",
        "type": "string",
        "description": "Tier names, cheapest first",
        "jsonPath": ".spec.tiers[*].name",
    },
    {
        "name": "Default",
        "type": "string",
        "description": "Tier for requests no rule or classifier placed (empty: the first tier)",
        "jsonPath": ".spec.selection.defaultTier",
    },
    {
        "name": "Affinity",
        "type": "string",
        "description": "What keeps related requests on one replica",
        "jsonPath": ".spec.affinity.key",
    },
    {
        "name": "Models",
        "type": "string",
        "description": "InferenceModels behind the tiers",
        "jsonPath": ".spec.tiers[*].model",
        "priority": 1,
    },
    {
        "name": "Endpoint",
        "type": "string",
        "description": "Base URL of the router's Service",
        "jsonPath": ".status.endpoint",
        "priority": 1,
    },
    {
        "name": "Age",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
    },
]


def inference_router_crd() -> dict[str, Any]:
    """The InferenceRouter CRD object, ready to create or to dump as YAML."""
    return crd_object(
        kind=ROUTER_KIND,
        plural=ROUTER_PLURAL,
        singular=ROUTER_SINGULAR,
        short_names=ROUTER_SHORT_NAMES,
        description=(
            "One OpenAI-compatible endpoint in front of several InferenceModels: it "
            "sends each request to the cheapest tier that can serve it, retries once "
            "on the next tier up when that tier fails, and keeps requests that share "
            "a prefix on the replica that holds it."
        ),
        spec_model=InferenceRouterSpec,
        status_model=InferenceRouterStatus,
        subresources={"status": {}},
        printer_columns=ROUTER_PRINTER_COLUMNS,
    )
