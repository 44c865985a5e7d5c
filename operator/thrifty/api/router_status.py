"""`status` of an InferenceRouter: what the operator observed of the router and its tiers."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from thrifty.api.base import StatusModel
from thrifty.api.router_tiers import MAX_TIERS
from thrifty.api.status import MAX_CONDITIONS, Condition


class TierStatus(StatusModel):
    """One tier as the router sees it."""

    name: Annotated[str, StringConstraints(max_length=63)]
    """The tier's name (spec.tiers[].name)."""

    model: Annotated[str, StringConstraints(max_length=63)]
    """Its InferenceModel."""

    ready_endpoints: Annotated[int, Field(ge=0)] | None = None
    """Ready pods in the model's EndpointSlices: where the router may send requests."""

    max_in_flight_per_replica: Annotated[int, Field(ge=1)] | None = None
    """The per-replica cap the router enforces for this tier now."""

    traffic_share: Annotated[float, Field(ge=0, le=1)] | None = None
    """Share of the router's requests this tier served over the recent window (0..1),
    escalations counted on the tier that finally served."""

    gpu_hours: Annotated[float, Field(ge=0)] | None = None
    """GPU-hours the tier's model has used so far (its status.cost.gpuHours)."""

    usd_per_1m_tokens: Annotated[float, Field(ge=0)] | None = Field(None, alias="usdPer1MTokens")
    """US dollars per million tokens the tier's model generated over the control loop's window
    (its status.cost.usdPer1MTokens): what sending a request here rather than to another tier
    costs."""


class InferenceRouterStatus(StatusModel):
    """Observed state, written by the operator."""

    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The metadata.generation the operator last reconciled."""

    conditions: Annotated[
        tuple[Condition, ...],
        Field(
            max_length=MAX_CONDITIONS,
            json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
        ),
    ] = ()
    """Ready (the router serves and every tier has a ready endpoint), Progressing and Degraded
    (the spec cannot be carried out as written, e.g. a tier names a missing InferenceModel), one
    entry per type."""

    tiers: Annotated[tuple[TierStatus, ...], Field(max_length=MAX_TIERS)] = ()
    """Per tier, in spec order: ready endpoints, the enforced cap, the traffic split."""

    endpoint: Annotated[str, StringConstraints(max_length=512)] | None = None
    """Where clients reach the router: the base URL of its Service, e.g.
    `http://assistant.models.svc:8000/v1`."""

    def condition(self, condition_type: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == condition_type), None)
