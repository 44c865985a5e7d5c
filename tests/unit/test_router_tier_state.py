"""A tier's bookkeeping: conversations stay on their replica, counts follow requests, the cap
holds, and a broken cache picture fails open to the least-loaded replica."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from thrifty.api import AffinitySpec
from thrifty.router.balancer import PickReason
from thrifty.router.prompt import Prompt, read_prompt
from thrifty.router.tier_queue import QueueTimeoutError, TierQueue
from thrifty.router.tier_state import Routed, TierState, home_key

REPLICAS = [f"10.244.0.{index}:8000" for index in range(1, 5)]


def tier(cap: int = 64, **affinity: Any) -> TierState:
    state = TierState("small", affinity=AffinitySpec.model_validate(affinity), cap=cap)
    state.set_replicas(REPLICAS)
    return state


def turn(conversation: int, turns: int) -> Prompt:
    messages = [{"role": "system", "content": "You are helpful. " * 20}]
    for number in range(turns):
        messages.append({"role": "user", "content": f"conversation {conversation} question {number} " * 30})
        messages.append({"role": "assistant", "content": "an answer " * 40})
    messages.append({"role": "user", "content": "and then?"})
    return read_prompt("chat", {"messages": messages})


def route(state: TierState, prompt: Prompt, headers: dict[str, str] | None = None) -> Routed:
    routed = state.route(prompt, headers or {})
    assert routed is not None
    return routed


def served(state: TierState, prompt: Prompt, headers: dict[str, str] | None = None) -> str:
    """Route a request and let it finish; the replica that served it."""
    routed = route(state, prompt, headers)
    state.finish(routed.ticket)
    return routed.replica


def test_a_conversation_stays_on_its_replica_turn_after_turn() -> None:
    state = tier()
    replicas = []
    for turns in range(1, 6):
        for conversation in range(8):  # other conversations interleave
            routed = route(state, turn(conversation, turns))
            state.finish(routed.ticket)
            if conversation == 3:
                replicas.append(routed.replica)

    assert len(set(replicas)) == 1


def test_a_follow_up_is_an_affinity_hit_with_its_prefix_counted() -> None:
    state = tier()
    first = route(state, turn(0, 1))
    state.finish(first.ticket)

    second = route(state, turn(0, 2))

    assert second.replica == first.replica
    assert second.pick.reason == PickReason.PREFIX
    assert second.pick.matched_tokens > 0


def test_counts_follow_dispatch_first_token_and_finish() -> None:
    state = tier()
    routed = route(state, turn(0, 1))
    stats = state.stats[routed.replica]
    assert (stats.in_flight, stats.prefill_backlog) == (1, routed.ticket.uncached_tokens)

    state.first_token(routed.ticket)
    assert (stats.in_flight, stats.prefill_backlog) == (1, 0)

    state.finish(routed.ticket)
    state.finish(routed.ticket)
    assert (stats.in_flight, stats.prefill_backlog, stats.context_tokens) == (0, 0, 0)


def test_no_replica_over_the_cap() -> None:
    state = tier(cap=2)
    routed = [state.route(turn(index, 1), {}) for index in range(9)]

    assert [item is None for item in routed] == [False] * 8 + [True]
    assert not state.has_room()
    assert max(stats.in_flight for stats in state.stats.values()) == 2


def test_replicas_that_stay_keep_their_counts_and_leavers_are_forgotten() -> None:
    state = tier()
    routed = route(state, turn(0, 1))

    state.set_replicas([routed.replica, "10.244.0.9:8000"])
    state.finish(route(state, turn(1, 1)).ticket)

    assert state.stats[routed.replica].in_flight == 1
    assert set(state.stats) == {routed.replica, "10.244.0.9:8000"}


def test_finishing_on_a_departed_replica_is_harmless() -> None:
    state = tier()
    routed = route(state, turn(0, 1))

    state.set_replicas([replica for replica in REPLICAS if replica != routed.replica])
    state.finish(routed.ticket)

    assert all(stats.in_flight == 0 for stats in state.stats.values())


def test_header_affinity_keeps_a_session_together_and_spreads_sessions() -> None:
    state = tier(key="Header", header="x-session-id")
    same = {served(state, turn(index, 1), {"x-session-id": "alice"}) for index in range(3)}
    spread = {served(state, turn(0, 1), {"x-session-id": f"user-{index}"}) for index in range(40)}

    assert len(same) == 1
    assert len(spread) == len(REPLICAS)


def test_first_user_message_affinity_ignores_later_turns() -> None:
    state = tier(key="FirstUserMessage")

    replicas = {served(state, turn(5, turns)) for turns in range(1, 4)}

    assert len(replicas) == 1
    assert home_key(turn(5, 1)) == home_key(turn(5, 3))


def test_no_affinity_picks_the_least_loaded() -> None:
    state = tier(key="None")
    picks = [route(state, turn(0, 1)).replica for _ in range(4)]

    assert sorted(picks) == REPLICAS


def test_a_broken_cache_picture_fails_open(monkeypatch: pytest.MonkeyPatch) -> None:
    state = tier()

    def broken(_blocks: Any) -> dict[str, int]:
        raise RuntimeError("index corrupted")

    monkeypatch.setattr(state.index, "match", broken)
    routed = state.route(turn(0, 1), {})

    assert routed is not None
    assert routed.pick.reason == PickReason.LEAST_LOADED


def test_no_replicas_routes_nothing() -> None:
    state = TierState("small", affinity=AffinitySpec(), cap=4)

    assert state.route(turn(0, 1), {}) is None


def test_kv_capacity_sizes_the_picture() -> None:
    state = tier()

    state.set_kv_capacity(REPLICAS[0], 64 * 10)

    assert state.index.capacity(REPLICAS[0]) == 10


# ---- the queue ----


def test_queue_hands_slots_to_waiters_in_order() -> None:
    async def scenario() -> list[str]:
        queue: TierQueue[str] = TierQueue()
        slots = ["slot-1"]
        order: list[str] = []

        async def waiter(name: str) -> None:
            got = await queue.wait(lambda: slots.pop() if slots else None, 5.0, release=lambda _: None)
            order.append(f"{name}:{got}")

        tasks = [asyncio.create_task(waiter(name)) for name in ("a", "b")]
        await asyncio.sleep(0)
        assert len(queue) == 2
        queue.wake()
        slots.append("slot-2")
        queue.wake()
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(scenario()) == ["a:slot-1", "b:slot-2"]


def test_queue_wait_times_out() -> None:
    async def scenario() -> int:
        queue: TierQueue[str] = TierQueue()
        with pytest.raises(QueueTimeoutError):
            await queue.wait(lambda: None, 0.01, release=lambda _: None)
        return len(queue)

    assert asyncio.run(scenario()) == 0


def test_a_cancelled_waiter_gives_back_a_slot_it_was_handed() -> None:
    async def scenario() -> list[str]:
        queue: TierQueue[str] = TierQueue()
        released: list[str] = []
        task = asyncio.create_task(queue.wait(lambda: "slot", 5.0, release=released.append))
        await asyncio.sleep(0)
        queue.wake()  # routed, but the client leaves before it runs
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return released

    assert asyncio.run(scenario()) == ["slot"]
