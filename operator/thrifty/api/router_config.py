"""The router's configuration file, as data: what the operator renders into the router's
ConfigMap (key `router.json`) and `thrifty router` reads. It lives in the API package because
both sides need the one shape: the operator writes it, the router validates it.

    {
      "name": "assistant",
      "namespace": "models",
      "generation": 3,
      "spec": { ...the InferenceRouter's spec, exactly as stored... },
      "models": {
        "llama-8b":  {"service": "llama-8b",  "servedName": "llama-8b",  "port": 8000,
                      "maxInFlightPerReplica": 192},
        "llama-70b": {"service": "llama-70b", "servedName": "llama-70b", "port": 8000}
      },
      "classifierPath": "/etc/thrifty/classifier/classifier.json"
    }

`models` has one entry per InferenceModel a tier names: its Service (the router watches that
Service's EndpointSlices), the name its vLLM serves (the router writes it into each request's
`model` field), and the live per-replica cap the control loop publishes
(status.maxNumSeqs.effective, else spec.batching.maxNumSeqs).
"""

from __future__ import annotations

from typing import Annotated, Final, Self

from pydantic import Field, StringConstraints, model_validator

from thrifty.api.base import SpecModel
from thrifty.api.inference_router import InferenceRouterSpec

DEFAULT_MAX_IN_FLIGHT_PER_REPLICA = 256
"""The cap when neither the spec nor the control loop gives one: vLLM's own default batch limit
on most GPUs (`--max-num-seqs` 256), so the router never queues what vLLM would run."""

ObjectName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253)]


WAKE_ANNOTATION: Final = "thrifty.dev/wake-requested-at"
"""Set by a router on an InferenceModel scaled to zero (an RFC 3339 time): a request is waiting."""


class ModelBackend(SpecModel):
    """How the router reaches one tier's InferenceModel."""

    service: ObjectName
    """The model's Service (same namespace); its EndpointSlices list the ready pods."""

    served_name: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    """What the model's vLLM serves: written into every forwarded request's `model` field."""

    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    """The pods' vLLM port (EndpointSlice ports override it when they name one)."""

    max_in_flight_per_replica: Annotated[int, Field(ge=1, le=8192)] | None = None
    """The live per-replica cap from the control loop; None leaves the spec's or the default."""

    wake_model: ObjectName | None = None
    """The InferenceModel to wake when the tier has no ready replica (set when the model may scale
    to zero): the router stamps its `thrifty.dev/wake-requested-at` annotation and holds requests."""


class RouterConfig(SpecModel):
    """The whole configuration file."""

    name: ObjectName
    """The InferenceRouter's name: the model id `/v1/models` lists for automatic routing."""

    namespace: ObjectName
    """Where the tiers' Services and EndpointSlices are."""

    generation: Annotated[int, Field(ge=0)] | None = None
    """The InferenceRouter's metadata.generation this file was rendered from (for logs)."""

    spec: InferenceRouterSpec
    """The InferenceRouter's spec."""

    models: dict[ObjectName, ModelBackend]
    """One entry per InferenceModel named by spec.tiers[].model."""

    classifier_path: Annotated[str, StringConstraints(max_length=4096)] | None = None
    """Where the classifier ConfigMap's key is mounted; required when spec.selection.classifier is set."""

    @model_validator(mode="after")
    def _every_tier_has_a_backend(self) -> Self:
        missing = [tier.model for tier in self.spec.tiers if tier.model not in self.models]
        if missing:
            raise ValueError(
                f"models: no entry for {', '.join(missing)}, named by spec.tiers[].model; the operator "
                "renders one per tier"
            )
        if self.spec.selection.classifier is not None and self.classifier_path is None:
            raise ValueError("classifierPath: required when spec.selection.classifier is set")
        return self

    def cap(self, tier: int) -> int:
        """The per-replica in-flight cap of a tier: the lower of the spec's and the control loop's."""
        candidates = [
            self.spec.admission.max_in_flight_per_replica,
            self.models[self.spec.tiers[tier].model].max_in_flight_per_replica,
        ]
        given = [cap for cap in candidates if cap is not None]
        return min(given) if given else DEFAULT_MAX_IN_FLIGHT_PER_REPLICA

    def backend(self, tier: int) -> ModelBackend:
        return self.models[self.spec.tiers[tier].model]
