"""The demo's client: a short stretch of the Mooncake conversation trace, sent through the router
at the trace's own pace (optionally faster), one OpenAI chat request per trace row.

Each trace row lists `hash_ids`, one per 512-token block, equal ids meaning equal prefix blocks.
The text of a block is made from its id, so rows that share blocks share a prompt prefix, which is
what the router's prefix affinity and the twins' prefix caches see.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

BLOCK_TOKENS = 512
CHARS_PER_TOKEN = 4  # the router and the twins count one token per four characters
WORDS = ("report", "order", "refund", "delivery", "invoice", "account", "ticket", "support",
         "customer", "product", "shipping", "status", "update", "question", "answer", "policy")  # fmt: skip


@dataclass(frozen=True)
class DemoRequest:
    at_s: float
    """Seconds after the replay starts."""
    messages: tuple[dict[str, str], ...]
    max_tokens: int


@dataclass(frozen=True)
class Result:
    sent_s: float
    """Seconds after the replay started."""
    latency_s: float
    status: int
    tier: str
    replica: str
    escalated_from: str
    prompt_tokens: int
    completion_tokens: int


def block_text(hash_id: int, chars: int) -> str:
    """The text of one prefix block: the same id always gives the same words."""
    rng = random.Random(hash_id)
    words: list[str] = [f"[{hash_id}]"]
    length = len(words[0])
    while length < chars:
        words.append(rng.choice(WORDS))
        length += len(words[-1]) + 1
    return " ".join(words)[:chars]


def requests_from_trace(
    path: Path,
    *,
    seconds: float,
    speedup: float = 1.0,
    prompt_scale: float = 0.5,
    max_prompt_tokens: int = 7000,
    max_output_tokens: int = 256,
) -> list[DemoRequest]:
    """The trace's first `seconds` (of demo time, after `speedup`), prompts scaled by
    `prompt_scale` so that the router's 4,000-token rule splits them between the tiers (the
    trace's median prompt is about 7,000 tokens), and capped to fit the tiers' context."""
    requests = []
    block_chars = int(BLOCK_TOKENS * prompt_scale) * CHARS_PER_TOKEN
    with path.open() as rows:
        for line in rows:
            row = json.loads(line)
            at = row["timestamp"] / 1000 / speedup
            if at >= seconds:
                break
            tokens = min(max_prompt_tokens, max(1, int(row["input_length"] * prompt_scale)))
            text = " ".join(block_text(h, block_chars) for h in row["hash_ids"])[: tokens * CHARS_PER_TOKEN]
            split = min(len(text), block_chars)  # the first block is the shared system prompt
            messages = (
                {"role": "system", "content": text[:split]},
                {"role": "user", "content": text[split:] or "?"},
            )
            requests.append(
                DemoRequest(at, messages, max(1, min(max_output_tokens, int(row["output_length"]))))
            )
    return requests


async def _send(session: aiohttp.ClientSession, url: str, request: DemoRequest, started: float) -> Result:
    sent = time.monotonic()
    body = {"model": "assistant", "messages": list(request.messages), "max_tokens": request.max_tokens}
    try:
        async with session.post(url, json=body) as response:
            payload = await response.json(content_type=None)
            usage = (payload or {}).get("usage") or {}
            headers = response.headers
            return Result(
                sent_s=sent - started,
                latency_s=time.monotonic() - sent,
                status=response.status,
                tier=headers.get("x-thrifty-tier", ""),
                replica=headers.get("x-thrifty-replica", ""),
                escalated_from=headers.get("x-thrifty-escalated-from", ""),
                prompt_tokens=int(usage.get("prompt_tokens", 0)),
                completion_tokens=int(usage.get("completion_tokens", 0)),
            )
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return Result(sent - started, time.monotonic() - sent, 0, "", "", "", 0, 0)


async def replay(address: str, requests: list[DemoRequest], on_result: Callable[[Result], None]) -> None:
    """Send every request at its time; `on_result` sees each answer as it comes."""
    url = f"http://{address}/v1/chat/completions"
    timeout = aiohttp.ClientTimeout(total=300)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        started = time.monotonic()

        async def one(request: DemoRequest) -> None:
            await asyncio.sleep(max(0.0, started + request.at_s - time.monotonic()))
            on_result(await _send(session, url, request, started))

        await asyncio.gather(*(one(request) for request in requests))
