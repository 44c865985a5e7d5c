"""Admission in front of a tier: dispatch now, wait in the queue, or refuse. Pure decisions.

The router never sends a replica more than its cap of requests; when no replica of the tier has
room, the request waits in the tier's queue (first come, first served) until one has, or until
the queue timeout. A full queue refuses at once, so that clients back off instead of piling up.
"""

from __future__ import annotations

import math
from enum import StrEnum


class Admission(StrEnum):
    DISPATCH = "dispatch"
    """A replica has room: send it now."""
    QUEUE = "queue"
    """Every replica is at its cap: wait for one to finish a request."""
    REJECT = "reject"
    """Every replica is at its cap and the queue is full: 429 (or escalate on Overload)."""


def admit(*, has_room: bool, queued: int, queue_limit: int) -> Admission:
    """The fate of a new request. `queued` counts those already waiting: a newcomer never
    overtakes them, even when a replica has room at this instant."""
    if has_room and queued == 0:
        return Admission.DISPATCH
    if queued < queue_limit:
        return Admission.QUEUE
    return Admission.REJECT


def retry_after_seconds(queue_timeout_s: float) -> int:
    """The Retry-After a timed-out request gets: one queue timeout, at least a second (the queue
    was still full a full timeout ago, so sooner would likely fail again)."""
    return max(1, math.ceil(queue_timeout_s))
