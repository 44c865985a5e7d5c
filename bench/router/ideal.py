"""The hit rate no router can beat: one prefix cache that sees every request.

Two versions. The unbounded cache keeps every block ever computed: the trace's own reuse, an upper
bound no finite fleet reaches. The pooled cache has the KV capacity of all N replicas together,
least recently used out first, as one big replica would: the ideal a router over N replicas
aims at, since splitting one cache into N can only lose hits (a prefix that two replicas hold
counts twice against their capacity; a request sent away from its prefix finds none).

It counts like vLLM: a request looks up the full 16-token blocks of its prompt except the one
holding its last token (always recomputed), hits up to the first miss, then its prompt blocks
and its output blocks (unique to it) take cache space.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from thrifty.twin import TraceRequest


def single_cache_hit_rate(
    requests: Sequence[TraceRequest], capacity_tokens: int | None, *, block_size: int = 16
) -> float:
    """Cached prompt tokens / prompt tokens for one LRU prefix cache of `capacity_tokens` (None:
    unbounded), requests taken in arrival order."""
    capacity = None if capacity_tokens is None else capacity_tokens // block_size
    cache: OrderedDict[object, None] = OrderedDict()
    hits = total = 0
    for position, request in enumerate(sorted(requests, key=lambda item: item.arrival_s)):
        hashes = request.block_hashes
        lookable = min(len(hashes), (request.prompt_tokens - 1) // block_size)
        matched = 0
        for block in hashes[:lookable]:
            if block not in cache:
                break
            matched += 1
        hits += matched * block_size
        total += request.prompt_tokens
        for block in hashes:
            cache[block] = None
            cache.move_to_end(block)
        unique = (request.prompt_tokens + request.output_tokens) // block_size - len(hashes)
        for index in range(max(0, unique)):
            cache[(position, index)] = None
        if capacity is not None:
            while len(cache) > capacity:
                cache.popitem(last=False)
    return hits / total if total else 0.0
