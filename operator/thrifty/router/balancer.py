"""Which replica of a tier serves a request: pure functions of the replicas' loads.

Three pickers, one per affinity key:

- `pick_by_prefix` (key PrefixBlocks): the replica where the request would get its first token
  soonest, estimated as the prefill work already waiting there plus the part of this prompt that
  replica does not hold in its cache. A replica holding the prompt's prefix wins unless enough
  prefill is queued there to outweigh what the cache saves; ties go to the prefix's home on the
  hash ring, so that router pods agree on where a new conversation starts.
- `pick_on_ring` (keys Header and FirstUserMessage): consistent hashing with bounded loads
  (Mirrokni, Thorup and Zadimoghaddam, 2016): the key's home replica unless it is over the bound,
  then the next replica clockwise that is not.
- `pick_least_loaded` (key None, and the fallback of the others): fewest requests in flight.

Every picker honours the same two limits. The bound: no replica takes a request while it holds
more than `factor` times the tier's mean in-flight count (rounded up, counting the new request),
which caps imbalance at `factor` whenever the tier is busy. The cap: no replica ever has more
than its cap in flight; when every replica is at its cap the pickers return None and the request
waits in the tier's queue.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class PickReason(StrEnum):
    PREFIX = "prefix"
    """The replica holding the longest cached prefix (or its cheapest equal)."""
    HOME = "home"
    """The key's home replica on the hash ring."""
    SPILL = "spill"
    """A replica after the preferred one, which was over its bound."""
    LEAST_LOADED = "least_loaded"
    """The replica with the fewest requests in flight."""


@dataclass(frozen=True, slots=True)
class ReplicaLoad:
    """What the router knows of one replica at the moment of a decision."""

    in_flight: int
    """Requests the router has sent it that have not finished."""
    cap: int
    """Most requests it may have in flight (the live per-replica cap)."""
    prefill_backlog: int = 0
    """Prompt tokens the router estimates it still has to prefill: the uncached part of every
    request sent to it that has not produced its first token yet."""
    context_tokens: int = 0
    """Prompt tokens of all its requests in flight: the KV cache their decoding reads every step."""


@dataclass(frozen=True, slots=True)
class Pick:
    index: int
    """Position of the chosen replica in the list given."""
    reason: PickReason
    matched_tokens: int = 0
    """Prompt tokens the router believes the chosen replica holds in its cache."""


def load_bound(loads: Sequence[ReplicaLoad], factor: float) -> int:
    """The most requests one replica may hold after taking the next one: `factor` times the mean
    including the new request, rounded up (never below 1)."""
    total = sum(load.in_flight for load in loads) + 1
    return max(1, math.ceil(factor * total / len(loads)))


def _eligible(load: ReplicaLoad, bound: int) -> bool:
    return load.in_flight < load.cap and load.in_flight + 1 <= bound


def pick_least_loaded(loads: Sequence[ReplicaLoad]) -> Pick | None:
    """Fewest in flight (then least prefill backlog, then position); None when all are at their cap."""
    best: int | None = None
    for index, load in enumerate(loads):
        if load.in_flight >= load.cap:
            continue
        if best is None or (load.in_flight, load.prefill_backlog) < (
            loads[best].in_flight,
            loads[best].prefill_backlog,
        ):
            best = index
    return None if best is None else Pick(best, PickReason.LEAST_LOADED)


def pick_on_ring(ring_order: Sequence[int], loads: Sequence[ReplicaLoad], factor: float) -> Pick | None:
    """Consistent hashing with bounded loads: the first replica in `ring_order` (the key's walk
    of the ring) within the bound, else the least loaded."""
    if not loads:
        return None
    bound = load_bound(loads, factor)
    for step, index in enumerate(ring_order):
        if _eligible(loads[index], bound):
            return Pick(index, PickReason.HOME if step == 0 else PickReason.SPILL)
    return pick_least_loaded(loads)


def pick_by_prefix(
    loads: Sequence[ReplicaLoad],
    matched_tokens: Sequence[int],
    prompt_tokens: int,
    *,
    home: int | None,
    factor: float,
    miss_weight: float = 1.0,
) -> Pick | None:
    """The replica within the bound with the least estimated prefill ahead of this request's first
    token: its backlog plus the prompt tokens it does not hold. Ties prefer `home`, then the
    longer cached prefix, then fewer requests in flight."""
    if not loads:
        return None
    bound = load_bound(loads, factor)
    best: tuple[float, int, int, int] | None = None
    best_index = -1
    for index, load in enumerate(loads):
        if not _eligible(load, bound):
            continue
        matched = min(matched_tokens[index], prompt_tokens)
        work = load.prefill_backlog + miss_weight * (prompt_tokens - matched)
        rank = (work, load.context_tokens, load.in_flight, 0 if index == home else 1)
        if best is None or rank < best:
            best, best_index = rank, index
    if best is None:
        return pick_least_loaded(loads)
    matched = min(matched_tokens[best_index], prompt_tokens)
    longest = max(matched_tokens) if matched_tokens else 0
    if matched > 0 and matched >= longest:
        reason = PickReason.PREFIX
    elif best_index == home and longest == 0:
        reason = PickReason.HOME
    else:
        reason = PickReason.SPILL if longest > matched else PickReason.LEAST_LOADED
    return Pick(best_index, reason, matched)
