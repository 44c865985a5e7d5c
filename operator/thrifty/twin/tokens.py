"""The twin's stand-in for a tokenizer: token counts from character counts, and synthetic output.

English text under the Llama 3 and Qwen 2.5 tokenizers averages about four characters per token,
so the twin counts ceil(characters / 4) tokens and never loads a real tokenizer. Chat requests
add a few tokens per message for the role markers of a chat template. Output is a fixed cycle of
four-character words, so streamed text has the same characters-per-token ratio as the count.
"""

from __future__ import annotations

CHARS_PER_TOKEN = 4
# Role header and end-of-turn markers of one chat message (Llama 3's template uses 4-5), and the
# assistant header that opens the reply.
CHAT_TOKENS_PER_MESSAGE = 4
CHAT_REPLY_PRIMER_TOKENS = 3

_WORDS = (" the", " big", " cat", " sat", " and", " ran", " far", " off", " all", " day")


def count_text_tokens(text: str) -> int:
    """Approximate tokens in `text`: one per four characters, rounded up."""
    return -(-len(text) // CHARS_PER_TOKEN)


def count_chat_tokens(contents: list[str]) -> int:
    """Approximate prompt tokens of a chat: each message's text plus its template markers."""
    return (
        sum(count_text_tokens(text) + CHAT_TOKENS_PER_MESSAGE for text in contents) + CHAT_REPLY_PRIMER_TOKENS
    )


def synthetic_text(first_token: int, count: int) -> str:
    """The text of output tokens `first_token` .. `first_token + count - 1` of a response."""
    return "".join(_WORDS[index % len(_WORDS)] for index in range(first_token, first_token + count))
