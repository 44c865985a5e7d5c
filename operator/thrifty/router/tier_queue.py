"""The queue in front of one tier: requests that found every replica at its cap wait here, first
come first served, until a replica has room or their wait runs out.

A waiter is handed its replica by `wake`, in the same event-loop step that frees the slot, so a
newcomer can never take the slot in between. Timeouts are loop timers, so a request is either
routed or timed out, never both.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class QueueTimeoutError(Exception):
    """The request waited the whole queue timeout without a replica getting room."""


class _Waiter(Generic[T]):
    __slots__ = ("future", "route", "timer")

    def __init__(self, future: asyncio.Future[T], route: Callable[[], T | None]) -> None:
        self.future = future
        self.route = route
        self.timer: asyncio.TimerHandle | None = None


class TierQueue(Generic[T]):
    """FIFO of requests waiting for room. `route` callbacks place a waiter (returning what it
    got) or return None when there is still no room."""

    def __init__(self) -> None:
        self._waiters: deque[_Waiter[T]] = deque()

    def __len__(self) -> int:
        return len(self._waiters)

    async def wait(
        self, route: Callable[[], T | None], timeout_s: float, *, release: Callable[[T], None]
    ) -> T:
        """Wait until `route()` succeeds inside `wake`, or raise `QueueTimeoutError`. If the caller
        is cancelled after being routed, `release` gives the slot back."""
        loop = asyncio.get_running_loop()
        waiter: _Waiter[T] = _Waiter(loop.create_future(), route)
        waiter.timer = loop.call_later(timeout_s, self._expire, waiter)
        self._waiters.append(waiter)
        try:
            return await waiter.future
        except asyncio.CancelledError:
            future = waiter.future
            if future.done() and not future.cancelled() and future.exception() is None:
                release(future.result())
            raise
        finally:
            waiter.timer.cancel()
            if not waiter.future.done():  # the caller was cancelled (client went away)
                waiter.future.cancel()
            self._discard(waiter)

    def wake(self) -> int:
        """Route waiters from the head while they get a replica; the number routed."""
        routed = 0
        while self._waiters:
            waiter = self._waiters[0]
            if waiter.future.done():
                self._waiters.popleft()
                continue
            result = waiter.route()
            if result is None:
                break
            self._waiters.popleft()
            waiter.future.set_result(result)
            routed += 1
        return routed

    def fail_all(self, error: Exception) -> None:
        """Release every waiter with `error` (the tier went away)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.future.done():
                waiter.future.set_exception(error)

    def _expire(self, waiter: _Waiter[T]) -> None:
        if not waiter.future.done():
            waiter.future.set_exception(QueueTimeoutError())
        self._discard(waiter)

    def _discard(self, waiter: _Waiter[T]) -> None:
        with contextlib.suppress(ValueError):  # already handed a replica, or expired
            self._waiters.remove(waiter)
