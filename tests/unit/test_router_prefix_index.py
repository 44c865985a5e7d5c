"""The router's picture of replicas' prefix caches: longest leading match, LRU forgetting."""

from __future__ import annotations

from thrifty.router.prefix_blocks import BLOCK_CHARS, MAX_BLOCKS, key_hash, prefix_blocks
from thrifty.router.prefix_index import PrefixIndex


def test_match_counts_leading_blocks_per_replica() -> None:
    index = PrefixIndex(default_capacity_blocks=100)
    index.record("a", [1, 2, 3, 4])
    index.record("b", [1, 2, 9])

    assert index.match([1, 2, 3, 5]) == {"a": 3, "b": 2}
    assert index.match([7, 1, 2]) == {}


def test_a_gap_ends_the_match() -> None:
    index = PrefixIndex(default_capacity_blocks=100)
    index.record("a", [1, 3])

    assert index.match([1, 2, 3]) == {"a": 1}


def test_capacity_forgets_least_recently_used_blocks() -> None:
    index = PrefixIndex(default_capacity_blocks=4)
    index.record("a", [1, 2])
    index.record("a", [10, 11])
    index.record("a", [1, 2, 20])  # touches 1 and 2 again: the oldest left is 11, the tail of [10, 11]

    assert index.held("a") == 4
    assert index.match([10, 11]) == {"a": 1}
    assert index.match([1, 2]) == {"a": 2}


def test_a_prompt_tail_is_forgotten_before_its_head() -> None:
    index = PrefixIndex(default_capacity_blocks=3)
    index.record("a", [1, 2, 3])
    index.record("a", [50])

    assert index.match([1, 2, 3]) == {"a": 2}


def test_forget_and_retain_drop_replicas() -> None:
    index = PrefixIndex(default_capacity_blocks=10)
    for replica in ("a", "b", "c"):
        index.record(replica, [1, 2])

    index.forget("a")
    index.retain(["b"])

    assert index.match([1, 2]) == {"b": 2}


def test_shrinking_capacity_evicts_at_once() -> None:
    index = PrefixIndex(default_capacity_blocks=10)
    index.record("a", list(range(10)))

    index.set_capacity("a", 2)

    assert index.held("a") == 2


def test_prefix_blocks_chain_so_equal_blocks_need_equal_history() -> None:
    shared = "x" * BLOCK_CHARS
    first = prefix_blocks(shared + "a" * BLOCK_CHARS + "tail")
    second = prefix_blocks(shared + "b" * BLOCK_CHARS)
    moved = prefix_blocks("a" * BLOCK_CHARS + shared)

    assert len(first) == 2
    assert first[0] == second[0]
    assert first[1] != second[1]
    assert moved[1] != first[0]


def test_prefix_blocks_are_capped_and_stable_across_processes() -> None:
    assert len(prefix_blocks("y" * BLOCK_CHARS * (MAX_BLOCKS + 5))) == MAX_BLOCKS
    assert (
        prefix_blocks("z" * BLOCK_CHARS)[0] == 0x5B66C7CDEEEB0FBC
        or len(prefix_blocks("z" * BLOCK_CHARS)) == 1
    )
    assert key_hash("session-1") == key_hash("session-1") != key_hash("session-2")
