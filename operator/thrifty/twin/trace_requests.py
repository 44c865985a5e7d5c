"""Requests of a recorded trace, and readers for the two public traces in shared/traces.

Arrival times are seconds from the trace's first request.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from thrifty.twin.block_hashes import hashes_from_trace_ids


@dataclass(frozen=True, slots=True)
class TraceRequest:
    """One request of a trace: when it arrives, how long it is, which prefix it shares."""

    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    block_hashes: tuple[int, ...] = ()
    """Hashes of the prompt's full 16-token KV blocks (`block_hashes`); empty shares nothing."""
    request_id: str = ""
    """Defaults to the request's position in the replay."""


def _azure_time(text: str) -> datetime:
    # The trace writes seven fractional digits; datetime takes six.
    whole, _, fraction = text.partition(".")
    return datetime.fromisoformat(f"{whole}.{fraction[:6].ljust(6, '0')}")


def load_azure_trace(
    path: Path, *, duration_s: float | None = None, time_scale: float = 1.0
) -> list[TraceRequest]:
    """The Azure LLM inference trace (`TIMESTAMP,ContextTokens,GeneratedTokens`).

    `duration_s` keeps the first seconds only; `time_scale` multiplies arrival times (0.5 doubles
    the rate). Requests with zero prompt or zero output tokens get one, as a server would see them.
    """
    requests: list[TraceRequest] = []
    start: datetime | None = None
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            when = _azure_time(row["TIMESTAMP"])
            start = start or when
            arrival = (when - start).total_seconds() * time_scale
            if duration_s is not None and arrival >= duration_s:
                continue
            requests.append(
                TraceRequest(
                    arrival_s=arrival,
                    prompt_tokens=max(1, int(row["ContextTokens"])),
                    output_tokens=max(1, int(row["GeneratedTokens"])),
                    request_id=f"azure-{len(requests)}",
                )
            )
    return requests


def load_mooncake_trace(
    path: Path, *, duration_s: float | None = None, time_scale: float = 1.0, block_size: int = 16
) -> list[TraceRequest]:
    """The Mooncake trace (JSON lines: `timestamp` ms, `input_length`, `output_length`, `hash_ids`).

    Each hash id names a 512-token block; they become 16-token KV-block hashes.
    """
    requests: list[TraceRequest] = []
    with path.open() as handle:
        for line in handle:
            if not line.strip():
                continue
            row = json.loads(line)
            arrival = row["timestamp"] / 1000 * time_scale
            if duration_s is not None and arrival >= duration_s:
                continue
            prompt = max(1, int(row["input_length"]))
            requests.append(
                TraceRequest(
                    arrival_s=arrival,
                    prompt_tokens=prompt,
                    output_tokens=max(1, int(row["output_length"])),
                    block_hashes=hashes_from_trace_ids(row["hash_ids"], prompt, block_size=block_size),
                    request_id=f"mooncake-{len(requests)}",
                )
            )
    return requests
