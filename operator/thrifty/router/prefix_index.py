"""The router's approximate picture of what each replica holds in its prefix cache.

The router never sees a replica's cache. It records which prefix blocks it sent where and
forgets them as the replica would: each replica keeps at most its KV capacity in blocks,
least recently used first. That picture is wrong in both directions at times (a replica may
have evicted early under memory pressure, or kept blocks the router forgot), so it only ranks
replicas; it never refuses one.

Within one request, blocks are recorded tail first, so the end of a prompt is forgotten before
its beginning, as vLLM frees a finished request's blocks tail first: a later request with the
same opening still finds its head.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence


class PrefixIndex:
    """Per replica, an LRU set of block hashes; per block, the replicas that hold it.

    index = PrefixIndex(default_capacity_blocks=7000)
    index.record("10.0.0.7:8000", blocks)
    index.match(blocks)          # {"10.0.0.7:8000": len(blocks)}
    """

    def __init__(self, *, default_capacity_blocks: int) -> None:
        if default_capacity_blocks < 1:
            raise ValueError(f"default_capacity_blocks: must be at least 1, got {default_capacity_blocks}")
        self._default_capacity = default_capacity_blocks
        self._capacity: dict[Hashable, int] = {}
        self._blocks: dict[Hashable, OrderedDict[int, None]] = {}
        self._holders: dict[int, set[Hashable]] = {}

    def set_capacity(self, replica: Hashable, blocks: int) -> None:
        """How many blocks `replica` keeps (its KV cache in blocks); shrinking evicts at once."""
        self._capacity[replica] = max(1, blocks)
        self._evict(replica)

    def capacity(self, replica: Hashable) -> int:
        return self._capacity.get(replica, self._default_capacity)

    def held(self, replica: Hashable) -> int:
        """Blocks the index believes `replica` holds."""
        return len(self._blocks.get(replica, ()))

    def match(self, blocks: Sequence[int]) -> dict[Hashable, int]:
        """Replica -> how many leading blocks of `blocks` it holds (replicas holding none left out)."""
        matched: dict[Hashable, int] = {}
        live: set[Hashable] | None = None
        holders_of = self._holders
        for position, block in enumerate(blocks):
            holders = holders_of.get(block)
            if not holders:
                break
            live = set(holders) if live is None else live & holders
            if not live:
                break
            for replica in live:
                matched[replica] = position + 1
        return matched

    def record(self, replica: Hashable, blocks: Sequence[int]) -> None:
        """`replica` was sent a prompt with these blocks: it holds them now, most recently used."""
        lru = self._blocks.get(replica)
        if lru is None:
            lru = self._blocks[replica] = OrderedDict()
        holders_of = self._holders
        for block in reversed(blocks):
            if block in lru:
                lru.move_to_end(block)
            else:
                lru[block] = None
                holders = holders_of.get(block)
                if holders is None:
                    holders_of[block] = {replica}
                else:
                    holders.add(replica)
        self._evict(replica)

    def forget(self, replica: Hashable) -> None:
        """Drop a replica that left (its cache left with it)."""
        for block in self._blocks.pop(replica, ()):
            self._drop_holder(block, replica)
        self._capacity.pop(replica, None)

    def retain(self, replicas: Iterable[Hashable]) -> None:
        """Forget every replica not in `replicas`."""
        keep = set(replicas)
        for replica in [r for r in self._blocks if r not in keep]:
            self.forget(replica)

    def _evict(self, replica: Hashable) -> None:
        lru = self._blocks.get(replica)
        if lru is None:
            return
        limit = self.capacity(replica)
        while len(lru) > limit:
            block, _ = lru.popitem(last=False)
            self._drop_holder(block, replica)

    def _drop_holder(self, block: int, replica: Hashable) -> None:
        holders = self._holders.get(block)
        if holders is None:
            return
        holders.discard(replica)
        if not holders:
            del self._holders[block]
