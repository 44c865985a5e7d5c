"""One tier as the router tracks it: its ready replicas, what each has in flight, the picture of
their prefix caches, and the hash ring. In memory, no I/O; the proxy drives it.

    state = TierState("small", affinity=spec.affinity, cap=64)
    state.set_replicas(["10.244.0.5:8000", "10.244.0.6:8000"])
    routed = state.route(prompt, headers)        # None: every replica is at its cap
    ...                                          # first streamed byte arrives
    state.first_token(routed.ticket)
    state.finish(routed.ticket)                  # response done (or failed)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from thrifty.api import AffinityKey, AffinitySpec
from thrifty.router.balancer import (
    Pick,
    ReplicaLoad,
    pick_by_prefix,
    pick_least_loaded,
    pick_on_ring,
)
from thrifty.router.hash_ring import HashRing
from thrifty.router.prefix_blocks import BLOCK_TOKENS, key_hash, prefix_blocks
from thrifty.router.prefix_index import PrefixIndex
from thrifty.router.prompt import Prompt

log = logging.getLogger(__name__)

DEFAULT_KV_CACHE_TOKENS = 400_000
"""Assumed KV capacity of a replica until its /metrics say otherwise (about a Llama-3.1-8B on
one 80 GB GPU); it only sizes the router's picture of the cache."""
PREFIX_BOUND_FACTOR = 2.0
"""The bounded-load factor of key PrefixBlocks when spec.affinity.boundedLoadFactor is unset. Its
picker already weighs each replica's queued prefill, so the bound is a guard, not the balancer.
In bench/router (Mooncake conversation trace, 8 twins) 2 kept 95% of the single-cache ideal hit
rate with every replica's time-averaged load within 1.1 of the mean; 1.5 kept 90%, 1.25 83%."""
RING_BOUND_FACTOR = 1.25
"""The factor of keys Header and FirstUserMessage when unset: there the bound is the only thing
that balances load (the value of the consistent-hashing-with-bounded-loads paper and KubeAI)."""
MISS_WEIGHT = 8.0
"""How much a prompt token the chosen replica must prefill counts against the prefill already
queued there. Above 1 because an uncached token delays every later request on that replica
too, and a conversation moved off its replica loses its cache for later turns. In bench/router's
sweep (factor 2) weights 1, 4, 8 and 16 kept 75%, 90%, 95% and 94% of the ideal hit rate at TTFT
p90 1.10, 1.11, 1.15 and 1.21 s: 8 is where hits stop rising."""
HOME_KEY_CHARS = 4096
"""Characters of a completion prompt that name its home replica (about 1,000 tokens)."""


@dataclass(frozen=True, slots=True)
class RequestIdentity:
    """A request reduced to what replica choice needs."""

    tokens: int
    """Approximate prompt tokens."""
    key_hash: int | None = None
    """Hash of the affinity key (header value, first user message); None: no affinity."""
    blocks: tuple[int, ...] = ()
    """Prefix block hashes (`prefix_blocks`), for key PrefixBlocks."""
    use_ring: bool = False
    """Place by consistent hashing on `key_hash` alone (keys Header and FirstUserMessage)."""


@dataclass(slots=True)
class ReplicaStats:
    in_flight: int = 0
    prefill_backlog: int = 0
    context_tokens: int = 0


@dataclass(slots=True)
class Ticket:
    """One request on one replica, until it finishes; the proxy hands it back to `TierState`."""

    replica: str
    prompt_tokens: int
    uncached_tokens: int
    prefilling: bool = True
    done: bool = False


@dataclass(frozen=True, slots=True)
class Routed:
    replica: str
    pick: Pick
    ticket: Ticket


@dataclass(slots=True)
class TierState:
    name: str
    affinity: AffinitySpec
    cap: int
    """Requests in flight per replica, at most."""
    replicas: tuple[str, ...] = ()
    stats: dict[str, ReplicaStats] = field(default_factory=dict)
    index: PrefixIndex = field(
        default_factory=lambda: PrefixIndex(default_capacity_blocks=DEFAULT_KV_CACHE_TOKENS // BLOCK_TOKENS)
    )
    ring: HashRing = field(default_factory=lambda: HashRing(()))
    miss_weight: float = MISS_WEIGHT
    """See MISS_WEIGHT; a field only so that benchmarks can vary it."""

    @property
    def bound_factor(self) -> float:
        factor = self.affinity.bounded_load_factor
        if factor is not None:
            return factor
        return PREFIX_BOUND_FACTOR if self.affinity.key == AffinityKey.PREFIX_BLOCKS else RING_BOUND_FACTOR

    def set_replicas(self, addresses: Sequence[str]) -> None:
        """The ready replicas now. Those that stay keep their counts; those that left are
        forgotten (their requests still in flight finish without touching the new picture)."""
        ordered = tuple(sorted(set(addresses)))
        if ordered == self.replicas:
            return
        self.replicas = ordered
        self.stats = {address: self.stats.get(address, ReplicaStats()) for address in ordered}
        self.index.retain(ordered)
        self.ring = HashRing(ordered)

    def set_kv_capacity(self, replica: str, tokens: int) -> None:
        """A replica's KV cache in tokens (from its vLLM /metrics), which sizes its picture."""
        self.index.set_capacity(replica, tokens // BLOCK_TOKENS)

    def has_room(self) -> bool:
        return any(stats.in_flight < self.cap for stats in self.stats.values())

    def in_flight(self) -> int:
        return sum(stats.in_flight for stats in self.stats.values())

    def route(self, prompt: Prompt, headers: Mapping[str, str]) -> Routed | None:
        """Pick a replica for a request and count it there; None when every replica is at its cap."""
        return self.route_identified(self.identify(prompt, headers))

    def identify(self, prompt: Prompt, headers: Mapping[str, str]) -> RequestIdentity:
        """What the affinity key needs of a request: its ring key, and prefix blocks for PrefixBlocks."""
        key = self.affinity.key
        if key == AffinityKey.NONE:
            return RequestIdentity(prompt.tokens)
        if key == AffinityKey.HEADER and self.affinity.header is not None:
            value = headers.get(self.affinity.header)
            if value:
                return RequestIdentity(prompt.tokens, key_hash(value), use_ring=True)
        if key == AffinityKey.FIRST_USER_MESSAGE:
            return RequestIdentity(prompt.tokens, key_hash(home_key(prompt)), use_ring=True)
        return RequestIdentity(prompt.tokens, key_hash(home_key(prompt)), prefix_blocks(prompt.text))

    def route_identified(self, identity: RequestIdentity) -> Routed | None:
        """`route` for a request already reduced to its identity (the benchmark replays traces
        that give prefix blocks but no text).

        Fails open: if the picture of the tier breaks (a bug, not a condition), the request
        goes to the least-loaded replica rather than failing.
        """
        if not self.replicas:
            return None
        try:
            pick = self._pick(identity)
        except Exception:
            log.exception("tier %s: affinity state failed; sending to the least-loaded replica", self.name)
            pick = pick_least_loaded(self._loads())
        if pick is None:
            return None
        replica = self.replicas[pick.index]
        if identity.blocks:
            self.index.record(replica, identity.blocks)
        uncached = max(0, identity.tokens - pick.matched_tokens)
        ticket = Ticket(replica, identity.tokens, uncached)
        stats = self.stats[replica]
        stats.in_flight += 1
        stats.prefill_backlog += uncached
        stats.context_tokens += identity.tokens
        return Routed(replica, pick, ticket)

    def first_token(self, ticket: Ticket) -> None:
        """The replica answered the first byte: the request's prefill is done."""
        if not ticket.prefilling:
            return
        ticket.prefilling = False
        stats = self.stats.get(ticket.replica)
        if stats is not None:
            stats.prefill_backlog = max(0, stats.prefill_backlog - ticket.uncached_tokens)

    def finish(self, ticket: Ticket) -> None:
        """The request ended (served, failed or cancelled); idempotent."""
        if ticket.done:
            return
        self.first_token(ticket)
        ticket.done = True
        stats = self.stats.get(ticket.replica)
        if stats is not None:
            stats.in_flight = max(0, stats.in_flight - 1)
            stats.context_tokens = max(0, stats.context_tokens - ticket.prompt_tokens)

    def _loads(self) -> list[ReplicaLoad]:
        stats = self.stats
        cap = self.cap
        return [
            ReplicaLoad(s.in_flight, cap, s.prefill_backlog, s.context_tokens)
            for s in (stats[address] for address in self.replicas)
        ]

    def _pick(self, identity: RequestIdentity) -> Pick | None:
        loads = self._loads()
        if identity.key_hash is None:
            return pick_least_loaded(loads)
        if identity.use_ring:
            return pick_on_ring(self.ring.walk(identity.key_hash), loads, self.bound_factor)
        matched_blocks = self.index.match(identity.blocks)
        matched = [matched_blocks.get(address, 0) * BLOCK_TOKENS for address in self.replicas]
        return pick_by_prefix(
            loads,
            matched,
            identity.tokens,
            home=self.ring.home(identity.key_hash),
            factor=self.bound_factor,
            miss_weight=self.miss_weight,
        )


def home_key(prompt: Prompt) -> str:
    """What names a conversation: its first user message (a completion: its opening text). It
    stays the same on every turn, so every turn, and every router pod, finds the same home."""
    if prompt.endpoint == "chat" and prompt.first_user_message:
        return prompt.first_user_message
    return prompt.text[:HOME_KEY_CHARS]
