"""`spec.escalation`, `spec.affinity` and `spec.admission` of an InferenceRouter: what happens when
a tier fails, which replica a request goes to, and how much the router lets through."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Self

from pydantic import ConfigDict, Field, field_validator, model_validator

from thrifty.api.base import CelRule, SpecModel, cel_rules
from thrifty.api.durations import Duration, duration_seconds
from thrifty.api.router_tiers import HeaderName


class EscalationTrigger(StrEnum):
    ERROR = "Error"
    """The tier's replica failed: connection refused or reset, or an HTTP 5xx other than 503."""
    TIMEOUT = "Timeout"
    """The attempt ran past spec.escalation.attemptTimeout."""
    OVERLOAD = "Overload"
    """The tier has no ready replica, its queue is full, or the replica answered 429 or 503."""
    LOW_CONFIDENCE = "LowConfidence"
    """The classifier's confidence in its prediction was below spec.selection.classifier.minConfidence
    (never fires without a classifier)."""


class AffinityKey(StrEnum):
    PREFIX_BLOCKS = "PrefixBlocks"
    """Prompt prefix blocks: the replica that most likely holds the longest part of the prompt in
    its KV cache, weighed against how much prefill work already waits there."""
    HEADER = "Header"
    """A request header (spec.affinity.header), e.g. a session id: consistent hashing with
    bounded loads on its value. Requests without the header fall back to PrefixBlocks."""
    FIRST_USER_MESSAGE = "FirstUserMessage"
    """The first user message of a chat (the prompt of a completion): consistent hashing with
    bounded loads on it, which keeps a conversation on one replica."""
    NONE = "None"
    """No affinity: the least-loaded replica."""


HEADER_IFF_HEADER_KEY = CelRule(
    rule="(has(self.key) && self.key == 'Header') == has(self.header)",
    message=(
        "spec.affinity.header is required when spec.affinity.key is Header and not allowed otherwise: "
        "set both (e.g. key: Header, header: x-session-id) or neither"
    ),
    field_path=".header",
)


class EscalationSpec(SpecModel):
    """Retry once on the next tier up when the chosen tier cannot serve. A request is never
    retried after any byte of its response reached the client, so a streamed answer is never
    cut and restarted; the top tier has no tier above it and answers with its own error."""

    triggers: Annotated[
        tuple[EscalationTrigger, ...],
        Field(max_length=4, json_schema_extra={"x-kubernetes-list-type": "set"}),
    ] = (
        EscalationTrigger.ERROR,
        EscalationTrigger.TIMEOUT,
        EscalationTrigger.OVERLOAD,
        EscalationTrigger.LOW_CONFIDENCE,
    )
    """What escalates: `Error`, `Timeout`, `Overload`, `LowConfidence`. Empty disables
    escalation. Default: all four. Example: `[Error, Overload]`."""

    attempt_timeout: Duration = "60s"
    """How long one attempt may wait for its replica: for a streamed request until the first chunk
    of the response, otherwise until the whole response. A request that times out on its last
    tier gets 504. Default `60s`. Example: `20s`."""

    @field_validator("triggers")
    @classmethod
    def _each_trigger_once(cls, triggers: tuple[EscalationTrigger, ...]) -> tuple[EscalationTrigger, ...]:
        if len(set(triggers)) != len(triggers):
            raise ValueError(f"spec.escalation.triggers lists a trigger twice: {[t.value for t in triggers]}")
        return triggers

    @property
    def attempt_timeout_seconds(self) -> float:
        return duration_seconds(self.attempt_timeout)


class AffinitySpec(SpecModel):
    """Which replica of the chosen tier serves a request. Requests that share a prefix are worth
    sending to the replica that already holds it in its KV cache (vLLM skips the prefill of a
    cached prefix); the bound keeps that from piling load onto one replica."""

    model_config = ConfigDict(json_schema_extra=cel_rules(HEADER_IFF_HEADER_KEY))

    key: AffinityKey = AffinityKey.PREFIX_BLOCKS
    """What identifies related requests: `PrefixBlocks`, `Header`, `FirstUserMessage` or `None`.
    Default `PrefixBlocks`."""

    header: HeaderName | None = None
    """The header whose value is the affinity key, lower-case; required with key `Header`.
    Example: `x-session-id`."""

    bounded_load_factor: Annotated[float, Field(ge=1, le=4)] | None = None
    """No replica takes a request while it has more than this factor times the tier's mean
    in-flight requests (consistent hashing with bounded loads): the preferred replica is skipped
    for the next best one, then for the least loaded. 1 forces an even spread; larger values keep
    more requests on the replica that holds their prefix. Unset: 2 for key `PrefixBlocks`, whose
    picker already weighs the prefill queued at each replica so the bound only guards, and 1.25
    for `Header` and `FirstUserMessage`, where the bound is what balances. Example: `1.5`."""

    @model_validator(mode="after")
    def _header_with_header_key(self) -> Self:
        if (self.key == AffinityKey.HEADER) != (self.header is not None):
            raise HEADER_IFF_HEADER_KEY.violation(f"key {self.key.value}, header {self.header!r}")
        return self


class AdmissionSpec(SpecModel):
    """How much the router lets through to each replica, and what waits. The router never has
    more than the per-replica cap in flight on a replica; the rest waits in the tier's queue."""

    max_in_flight_per_replica: Annotated[int, Field(ge=1, le=8192)] | None = None
    """The cap on requests in flight per replica. Unset follows each tier's model: the live cap
    that Thrifty's control loop publishes in the InferenceModel's status.maxNumSeqs.effective,
    else its spec.batching.maxNumSeqs. When set, it is the cap for every tier (the control loop's
    cap still lowers it). Example: `64`."""

    queue_limit: Annotated[int, Field(ge=0, le=100_000)] = 1000
    """Most requests waiting per tier; one more is answered 429 Too Many Requests (or escalates
    when spec.escalation.triggers has `Overload`). 0 disables queueing. Default 1000."""

    queue_timeout: Duration = "30s"
    """Longest wait in the queue; after it the request is answered 503 Service Unavailable with
    a Retry-After header. Default `30s`."""

    cold_start_timeout: Duration = "10m"
    """Longest wait for a tier whose model is scaled to zero (spec.scaling.replicas.min 0): the
    router asks the model to wake and holds the request (within queueLimit) while a replica starts;
    after it, 503 Service Unavailable with a Retry-After header. Default `10m`."""

    @property
    def queue_timeout_seconds(self) -> float:
        return duration_seconds(self.queue_timeout)

    @property
    def cold_start_timeout_seconds(self) -> float:
        return duration_seconds(self.cold_start_timeout)
