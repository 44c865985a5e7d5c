"""The paged KV cache: a pool of fixed-size blocks, ref-counted, with prefix caching by block hash.

It follows vLLM V1's block pool. A block whose tokens are all computed gets the hash of its
content (chained through the hashes before it) and stays findable by that hash after its
request frees it, until the block is handed out again. Free blocks wait in one LRU queue: a
request frees its blocks tail first, so the end of a prompt is evicted before its beginning,
and allocation takes the block at the head, evicting whatever hash it held.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence


class BlockPool:
    """`num_blocks` KV blocks; every block is either referenced by requests or in the free queue."""

    __slots__ = ("_by_hash", "_free", "_hash_of", "_ref_count", "num_blocks")

    def __init__(self, num_blocks: int) -> None:
        self.num_blocks = num_blocks
        self._ref_count = [0] * num_blocks
        self._hash_of: list[int | None] = [None] * num_blocks
        self._by_hash: dict[int, int] = {}
        # Insertion order is LRU order: the head is the next block to hand out.
        self._free: OrderedDict[int, None] = OrderedDict.fromkeys(range(num_blocks))

    @property
    def num_free(self) -> int:
        """Blocks no request references (cached ones included: they can be evicted)."""
        return len(self._free)

    @property
    def usage(self) -> float:
        """Share of blocks referenced by requests: vLLM's `kv_cache_usage_perc`."""
        return 1.0 - len(self._free) / self.num_blocks

    @property
    def num_cached(self) -> int:
        """Blocks findable by hash (referenced or not)."""
        return len(self._by_hash)

    def longest_cached_prefix(self, hashes: Sequence[int], max_blocks: int) -> list[int]:
        """Blocks holding the first hashes of `hashes`, stopping at the first miss."""
        hits: list[int] = []
        by_hash = self._by_hash
        for block_hash in hashes[:max_blocks]:
            block = by_hash.get(block_hash)
            if block is None:
                break
            hits.append(block)
        return hits

    def can_allocate(self, cached_hits: Sequence[int], num_new: int) -> bool:
        """Whether `num_new` fresh blocks can be had after taking `cached_hits` out of the free queue."""
        reclaimed = sum(1 for block in cached_hits if self._ref_count[block] == 0)
        return num_new + reclaimed <= len(self._free)

    def take_cached(self, cached_hits: Sequence[int], into: list[int]) -> None:
        """Reference blocks found by hash (they may sit in the free queue) and append them to `into`."""
        ref_count = self._ref_count
        for block in cached_hits:
            if ref_count[block] == 0:
                del self._free[block]
            ref_count[block] += 1
            into.append(block)

    def allocate(self, num_new: int, into: list[int]) -> None:
        """Append `num_new` fresh blocks to `into`, evicting the hashes they held. Check first."""
        free = self._free
        ref_count = self._ref_count
        hash_of = self._hash_of
        for _ in range(num_new):
            block, _unused = free.popitem(last=False)
            old_hash = hash_of[block]
            if old_hash is not None:
                hash_of[block] = None
                if self._by_hash.get(old_hash) == block:
                    del self._by_hash[old_hash]
            ref_count[block] = 1
            into.append(block)

    def release(self, blocks: Sequence[int]) -> None:
        """Drop one reference to each block, tail first; unreferenced blocks join the free queue."""
        ref_count = self._ref_count
        free = self._free
        for block in reversed(blocks):
            ref_count[block] -= 1
            if ref_count[block] == 0:
                free[block] = None

    def register(self, block: int, block_hash: int) -> None:
        """Make a fully computed block findable by its hash (the first block with a hash keeps it)."""
        if block_hash not in self._by_hash:
            self._by_hash[block_hash] = block
            self._hash_of[block] = block_hash


class PlainBlockPool(BlockPool):
    """The pool of an engine without prefix caching: no block is ever found by hash, so which free
    block comes next does not matter, and the free queue is a plain stack (the bench's hot path:
    an OrderedDict costs about ten times as much per block)."""

    __slots__ = ("_stack",)

    def __init__(self, num_blocks: int) -> None:
        super().__init__(0)
        self.num_blocks = num_blocks
        self._ref_count = [0] * num_blocks
        self._stack = list(range(num_blocks - 1, -1, -1))

    @property
    def num_free(self) -> int:
        return len(self._stack)

    @property
    def usage(self) -> float:
        return 1.0 - len(self._stack) / self.num_blocks

    def can_allocate(self, cached_hits: Sequence[int], num_new: int) -> bool:
        if cached_hits:
            raise ValueError("a pool without prefix caching has no cached blocks")
        return num_new <= len(self._stack)

    def take_cached(self, cached_hits: Sequence[int], into: list[int]) -> None:
        if cached_hits:
            raise ValueError("a pool without prefix caching has no cached blocks")

    def allocate(self, num_new: int, into: list[int]) -> None:
        if num_new <= 0:
            return
        stack = self._stack
        taken = stack[-num_new:]
        del stack[-num_new:]
        ref_count = self._ref_count
        for block in taken:
            ref_count[block] = 1
        into.extend(taken)

    def release(self, blocks: Sequence[int]) -> None:
        ref_count = self._ref_count
        stack = self._stack
        for block in reversed(blocks):
            ref_count[block] -= 1
            if ref_count[block] == 0:
                stack.append(block)

    def register(self, block: int, block_hash: int) -> None:
        raise ValueError("a pool without prefix caching registers no hashes")
