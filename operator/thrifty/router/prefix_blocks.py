"""Prefix identity of a prompt for routing: one chained hash per block of text.

Block i's hash covers all text up to the end of block i, so two prompts share block i's hash
exactly when they share that whole prefix, as vLLM's KV-block hashes do. The router works on text
(it has no tokenizer), in blocks of 64 tokens at four characters per token: coarse enough that a
12,000-token prompt is under 200 hashes, fine enough that a shared system prompt of a few hundred
tokens is seen. Hashes are blake2b, identical in every process, so every router pod agrees on
where a prefix's first block belongs.
"""

from __future__ import annotations

import hashlib

from thrifty.router.tokens import CHARS_PER_TOKEN

BLOCK_TOKENS = 64
BLOCK_CHARS = BLOCK_TOKENS * CHARS_PER_TOKEN
MAX_BLOCKS = 256
"""Blocks looked at per prompt (16,384 tokens): the rest rarely changes which replica is best,
and bounds the router's work per request."""


def prefix_blocks(text: str, *, max_blocks: int = MAX_BLOCKS) -> tuple[int, ...]:
    """Chained hashes of the full blocks of `text` (a partial last block has none)."""
    encoded = text.encode()
    count = min(len(encoded) // BLOCK_CHARS, max_blocks)
    hashes: list[int] = []
    previous = b""
    for index in range(count):
        previous = hashlib.blake2b(
            previous + encoded[index * BLOCK_CHARS : (index + 1) * BLOCK_CHARS], digest_size=8
        ).digest()
        hashes.append(int.from_bytes(previous, "big"))
    return tuple(hashes)


def key_hash(key: str) -> int:
    """A stable 64-bit hash of an affinity key (a header value, a first message)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
