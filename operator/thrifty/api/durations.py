"""Durations as people write them in YAML ("2s", "50ms", "5m"), parsed once into seconds."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import StringConstraints

# A positive number (zero is refused: a zero SLO or cooldown is always a mistake) and one unit.
# Go's duration syntax allows sums such as "1m30s"; one unit is enough for SLOs and cooldowns.
# The first branch reads numbers >= 1 ("2", "1.5"), the second fractions ("0.5", ".25").
DURATION_PATTERN = r"^(0*[1-9][0-9]*(\.[0-9]+)?|0*\.[0-9]*[1-9][0-9]*)(ms|s|m|h)$"
_DURATION = re.compile(DURATION_PATTERN)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

Duration = Annotated[str, StringConstraints(pattern=DURATION_PATTERN, max_length=32)]
"""A duration such as "50ms", "2s", "1.5s", "5m" or "1h"."""


def parse_duration(text: str) -> timedelta:
    """Parse "50ms", "2s", "1.5s", "5m" or "1h" into a timedelta.

    >>> parse_duration("50ms").total_seconds()
    0.05
    """
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration: write a positive number and one unit of ms, s, m or h, e.g. 2s"
        )
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(3)])


def duration_seconds(text: str) -> float:
    """Seconds in a duration string: what the control loop compares metrics against."""
    return parse_duration(text).total_seconds()
