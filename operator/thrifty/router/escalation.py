"""When a failed attempt is retried on the next tier up: pure decisions.

One retry at most, only upward, only for the triggers spec.escalation.triggers lists, and never once
any byte of the response has reached the client: a streamed answer is never cut and restarted.
"""

from __future__ import annotations

from collections.abc import Collection

from thrifty.api import EscalationTrigger


def trigger_for_status(status: int) -> EscalationTrigger | None:
    """What an upstream HTTP status means for escalation: 429 and 503 are overload, any other 5xx
    an error; 2xx and other 4xx (the client's own mistakes) are final."""
    if status in (429, 503):
        return EscalationTrigger.OVERLOAD
    if status >= 500:
        return EscalationTrigger.ERROR
    return None


def escalation_target(
    tier: int,
    tier_count: int,
    trigger: EscalationTrigger,
    *,
    allowed: Collection[EscalationTrigger],
    escalations_so_far: int,
    response_started: bool,
) -> int | None:
    """The tier to retry on after `trigger` hit an attempt on `tier`, or None to give up."""
    if response_started or escalations_so_far >= 1 or trigger not in allowed:
        return None
    if tier + 1 >= tier_count:
        return None
    return tier + 1
