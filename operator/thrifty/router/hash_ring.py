"""A consistent-hash ring over a tier's replicas: where a key belongs, and who is next in line.

Each replica sits at `replication` points of the ring, so keys spread evenly and a replica that
joins or leaves moves only about 1/N of the keys. Walking clockwise from a key's point gives the
order in which replicas are tried when the first ones are over their load bound.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Sequence

DEFAULT_REPLICATION = 256
"""Points per replica (KubeAI's default `replication` for its prefix-hash strategy)."""


def _point(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class HashRing:
    """Immutable ring over replica names; build a new one when the replicas change."""

    __slots__ = ("_owners", "_points", "replicas")

    def __init__(self, replicas: Sequence[str], *, replication: int = DEFAULT_REPLICATION) -> None:
        self.replicas = tuple(replicas)
        placed = sorted(
            (_point(f"{replica}#{copy}"), position)
            for position, replica in enumerate(self.replicas)
            for copy in range(replication)
        )
        self._points = [point for point, _ in placed]
        self._owners = [position for _, position in placed]

    def walk(self, key_hash: int) -> list[int]:
        """Positions (into `replicas`) in ring order from `key_hash`, each replica once."""
        count = len(self.replicas)
        if count == 0:
            return []
        start = bisect.bisect_left(self._points, key_hash % (1 << 64))
        seen: list[int] = []
        owners = self._owners
        total = len(owners)
        for step in range(total):
            owner = owners[(start + step) % total]
            if owner not in seen:
                seen.append(owner)
                if len(seen) == count:
                    break
        return seen

    def home(self, key_hash: int) -> int | None:
        """The position of the replica `key_hash` belongs to; None on an empty ring."""
        order = self.walk(key_hash)
        return order[0] if order else None
