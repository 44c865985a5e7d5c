"""What the router reads from OpenAI request bodies."""

from __future__ import annotations

import re
from typing import Any

import pytest

from thrifty.router.prompt import BadRequestError, read_prompt
from thrifty.router.tokens import chat_tokens, text_tokens


def test_chat_prompt_reads_every_message_and_the_first_user_message() -> None:
    body = {
        "model": "assistant",
        "stream": True,
        "messages": [
            {"role": "system", "content": "be brief"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "first"}, {"type": "image_url", "image_url": {}}],
            },
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "second"},
        ],
    }

    prompt = read_prompt("chat", body)

    assert prompt.text == "system: be brief\nuser: first\nassistant: ok\nuser: second"
    assert prompt.first_user_message == "first"
    assert prompt.tokens == chat_tokens(prompt.text.split("\n"))
    assert (prompt.requested_model, prompt.stream) == ("assistant", True)


@pytest.mark.parametrize(("prompt", "tokens"), [("abcdefghi", 3), (["abcd"], 1), ([1, 2, 3, 4, 5], 5)])
def test_completion_prompt_counts_four_characters_per_token(prompt: Any, tokens: int) -> None:
    assert read_prompt("completion", {"prompt": prompt}).tokens == tokens


def test_token_estimate_rounds_up() -> None:
    assert (text_tokens(""), text_tokens("a"), text_tokens("abcd"), text_tokens("abcde")) == (0, 1, 1, 2)


@pytest.mark.parametrize(
    ("endpoint", "body", "phrase"),
    [
        ("chat", [], "JSON object"),
        ("chat", {"messages": []}, "messages: must be a non-empty list"),
        ("chat", {"messages": [{"content": "x"}]}, "messages[0]: must be an object with a string role"),
        ("completion", {"prompt": {"text": "x"}}, "prompt: must be a string"),
    ],
)
def test_unroutable_bodies_say_what_is_wrong(endpoint: Any, body: Any, phrase: str) -> None:
    with pytest.raises(BadRequestError, match=re.escape(phrase)):
        read_prompt(endpoint, body)
