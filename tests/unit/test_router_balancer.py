"""Replica choice: prefix affinity weighed against queued prefill, bounded loads, caps, the ring."""

from __future__ import annotations

import pytest

from thrifty.router.balancer import (
    PickReason,
    ReplicaLoad,
    load_bound,
    pick_by_prefix,
    pick_least_loaded,
    pick_on_ring,
)
from thrifty.router.hash_ring import HashRing

CAP = 100


def loads(*in_flight: int, backlog: tuple[int, ...] | None = None) -> list[ReplicaLoad]:
    backlog = backlog or (0,) * len(in_flight)
    return [ReplicaLoad(count, CAP, queued) for count, queued in zip(in_flight, backlog, strict=True)]


def test_bound_is_factor_times_mean_including_the_new_request_rounded_up() -> None:
    assert load_bound(loads(10, 10, 10, 10), 1.25) == 13  # ceil(1.25 * 41 / 4)
    assert load_bound(loads(0, 0, 0, 0), 1.25) == 1


def test_prefix_holder_wins_when_queues_are_equal() -> None:
    pick = pick_by_prefix(loads(3, 3, 3), [0, 4096, 0], 5000, home=0, factor=2.0)

    assert pick is not None
    assert (pick.index, pick.reason, pick.matched_tokens) == (1, PickReason.PREFIX, 4096)


def test_queued_prefill_outweighs_a_small_cached_prefix() -> None:
    # Replica 1 holds 512 of 5,000 tokens but has 20,000 tokens of prefill queued; replica 2 has none.
    pick = pick_by_prefix(loads(3, 3, 3, backlog=(9000, 20000, 0)), [0, 512, 0], 5000, home=0, factor=2.0)

    assert pick is not None
    assert pick.index == 2
    assert pick.reason == PickReason.SPILL


def test_miss_weight_keeps_a_conversation_on_its_replica_despite_a_moderate_queue() -> None:
    backlog = (11_000, 0)
    matched = [10_000, 0]

    greedy = pick_by_prefix(loads(2, 2, backlog=backlog), matched, 12_000, home=None, factor=2.0)
    sticky = pick_by_prefix(
        loads(2, 2, backlog=backlog), matched, 12_000, home=None, factor=2.0, miss_weight=8.0
    )

    assert greedy is not None
    assert sticky is not None
    assert (greedy.index, sticky.index) == (1, 0)


def test_replica_over_the_bound_is_skipped_even_with_the_whole_prefix() -> None:
    pick = pick_by_prefix(loads(12, 2, 2), [8000, 0, 0], 8000, home=0, factor=1.25, miss_weight=8.0)

    assert pick is not None
    assert pick.index in (1, 2)
    assert pick.reason == PickReason.SPILL


def test_replica_at_its_cap_is_never_picked() -> None:
    at_cap = [ReplicaLoad(4, 4), ReplicaLoad(1, 4)]

    pick = pick_by_prefix(at_cap, [9000, 0], 9000, home=0, factor=4.0)

    assert pick is not None
    assert pick.index == 1


def test_every_replica_at_its_cap_means_wait() -> None:
    full = [ReplicaLoad(2, 2), ReplicaLoad(2, 2)]

    assert pick_by_prefix(full, [0, 0], 100, home=0, factor=4.0) is None
    assert pick_on_ring([0, 1], full, 1.25) is None
    assert pick_least_loaded(full) is None


def test_equal_work_goes_to_less_decode_context_then_home() -> None:
    busy = [ReplicaLoad(2, CAP, 0, 9000), ReplicaLoad(2, CAP, 0, 1000), ReplicaLoad(2, CAP, 0, 1000)]

    pick = pick_by_prefix(busy, [0, 0, 0], 300, home=2, factor=2.0)

    assert pick is not None
    assert (pick.index, pick.reason) == (2, PickReason.HOME)


def test_ring_pick_is_home_until_home_is_over_the_bound() -> None:
    order = [2, 0, 1]

    calm = pick_on_ring(order, loads(1, 1, 1), 1.25)
    hot = pick_on_ring(order, loads(1, 1, 5), 1.25)

    assert calm is not None
    assert hot is not None
    assert (calm.index, calm.reason) == (2, PickReason.HOME)
    assert (hot.index, hot.reason) == (0, PickReason.SPILL)


def test_least_loaded_breaks_ties_by_backlog_then_position() -> None:
    pick = pick_least_loaded(loads(3, 1, 1, backlog=(0, 500, 100)))

    assert pick is not None
    assert pick.index == 2


@pytest.mark.parametrize("count", [2, 5, 9])
def test_ring_walk_visits_every_replica_once_and_is_stable(count: int) -> None:
    replicas = [f"10.0.0.{index}:8000" for index in range(count)]
    ring = HashRing(replicas)

    walk = ring.walk(123456789)

    assert sorted(walk) == list(range(count))
    assert HashRing(replicas).walk(123456789) == walk


def test_removing_a_replica_moves_only_its_own_keys() -> None:
    replicas = [f"10.0.0.{index}:8000" for index in range(8)]
    before, after = HashRing(replicas), HashRing(replicas[:-1])
    keys = [index * 0x9E3779B97F4A7C15 % (1 << 64) for index in range(2000)]

    moved = [key for key in keys if replicas[before.walk(key)[0]] != replicas[:-1][after.walk(key)[0]]]

    assert all(replicas[before.walk(key)[0]] == replicas[-1] for key in moved)
    assert 0.05 < len(moved) / len(keys) < 0.25  # about 1/8
