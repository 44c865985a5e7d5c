"""Prefix identity of a prompt as one hash per full KV block, chained like vLLM's block hashes.

Two prompts share block i's hash exactly when they share every token up to the end of block i.
The twin has no real tokens, so the hashes come from one of two places:

- a trace that names its prefix blocks (the Mooncake trace gives one id per 512-token block;
  equal ids are equal prefixes): each trace block becomes 512/16 = 32 KV blocks;
- the prompt text, cut into chunks of `block_size` tokens at the twin's ~4 characters per token.

Hashes use Python's hash of int tuples and blake2b, both the same in every process, so replays
are deterministic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from thrifty.twin.tokens import CHARS_PER_TOKEN


def hashes_from_trace_ids(
    hash_ids: Sequence[int], prompt_tokens: int, *, trace_block_tokens: int = 512, block_size: int = 16
) -> tuple[int, ...]:
    """KV-block hashes of a prompt whose trace gives one id per `trace_block_tokens` tokens."""
    if trace_block_tokens % block_size:
        raise ValueError(
            f"trace_block_tokens: {trace_block_tokens} is not a multiple of the KV block size {block_size}"
        )
    per_trace_block = trace_block_tokens // block_size
    full_blocks = min(prompt_tokens // block_size, len(hash_ids) * per_trace_block)
    hashes: list[int] = []
    previous = 0
    for index in range(full_blocks):
        trace_id = hash_ids[index // per_trace_block]
        previous = hash((previous, trace_id, index % per_trace_block))
        hashes.append(previous)
    return tuple(hashes)


def hashes_from_text(text: str, prompt_tokens: int, *, block_size: int = 16) -> tuple[int, ...]:
    """KV-block hashes of a prompt of `prompt_tokens` tokens whose content is `text`.

    Blocks past the end of the text (a prompt length forced longer than its text) still chain, so
    equal text with equal length gives equal hashes.
    """
    chunk = block_size * CHARS_PER_TOKEN
    encoded = text.encode()
    hashes: list[int] = []
    previous = b""
    for index in range(prompt_tokens // block_size):
        digest = hashlib.blake2b(previous + encoded[index * chunk : (index + 1) * chunk], digest_size=8)
        previous = digest.digest()
        hashes.append(int.from_bytes(previous, "big", signed=True))
    return tuple(hashes)
