"""Token counts without a tokenizer: one token per four characters.

English text under the Llama 3 and Qwen 2.5 tokenizers averages about four characters per token
(the twin counts the same way, so rules behave alike against twins and real servers). A router
that tokenized would need every tier's tokenizer in memory and tens of microseconds to
milliseconds per prompt, while rules on prompt length only need the order of magnitude: a 4,000
token threshold means "long", and code or non-English text, which run denser, deserve a margin in
the threshold rather than exact counts.
"""

from __future__ import annotations

CHARS_PER_TOKEN = 4
# Role header and end-of-turn markers of one chat message (Llama 3's template uses 4-5), and the
# assistant header that opens the reply: the same allowance the twin makes.
CHAT_TOKENS_PER_MESSAGE = 4
CHAT_REPLY_PRIMER_TOKENS = 3


def text_tokens(text: str) -> int:
    """Approximate tokens in `text`: one per four characters, rounded up."""
    return -(-len(text) // CHARS_PER_TOKEN)


def chat_tokens(contents: list[str]) -> int:
    """Approximate prompt tokens of a chat: each message's text plus its template markers."""
    return sum(text_tokens(text) + CHAT_TOKENS_PER_MESSAGE for text in contents) + CHAT_REPLY_PRIMER_TOKENS
