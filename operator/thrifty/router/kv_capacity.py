"""A replica's KV-cache capacity, from the `vllm:cache_config_info` gauge of its /metrics.

vLLM publishes its cache configuration as labels of an info gauge; `num_gpu_blocks` times
`block_size` is how many tokens of KV the replica holds, which sizes the router's picture of
that replica's prefix cache (as llm-d's prefix scorer auto-tunes its LRU from the same metric).
"""

from __future__ import annotations

import re

_INFO_LINE = re.compile(r"^vllm:cache_config_info\{(?P<labels>[^}]*)\}", re.MULTILINE)
_LABEL = re.compile(r'(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<value>(?:[^"\\]|\\.)*)"')


def kv_capacity_tokens(exposition: str) -> int | None:
    """Tokens of KV cache from a Prometheus text exposition; None when the gauge or its labels
    are missing or not numbers."""
    match = _INFO_LINE.search(exposition)
    if match is None:
        return None
    labels = {item.group("name"): item.group("value") for item in _LABEL.finditer(match.group("labels"))}
    blocks, size = labels.get("num_gpu_blocks", ""), labels.get("block_size", "")
    if not blocks.isdigit() or not size.isdigit():
        return None
    tokens = int(blocks) * int(size)
    return tokens if tokens > 0 else None
