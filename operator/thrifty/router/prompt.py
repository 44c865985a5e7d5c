"""What the router reads from an OpenAI request: the prompt's text, its first user message, its
approximate length, the requested model and whether it streams. Pure; no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from thrifty.router.tokens import chat_tokens, text_tokens

Endpoint = Literal["chat", "completion"]


class BadRequestError(ValueError):
    """The body is not an OpenAI request the router can route; answered 400 with this message."""


@dataclass(frozen=True, slots=True)
class Prompt:
    """One request as the router sees it."""

    endpoint: Endpoint
    text: str
    """Every message as `role: content`, one per line (a completion's prompt as is): what rules
    search and what prefix blocks are cut from."""
    first_user_message: str
    """The first user message of a chat; a completion's prompt."""
    tokens: int
    """Approximate prompt tokens (four characters per token, plus chat template markers)."""
    requested_model: str | None
    """The OpenAI `model` field, if any."""
    stream: bool
    """Whether the client asked for server-sent events."""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: the text ones count
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _chat(body: dict[str, Any]) -> tuple[str, str, int]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequestError("messages: must be a non-empty list of {role, content} objects")
    lines: list[str] = []
    first_user = ""
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise BadRequestError(f"messages[{index}]: must be an object with a string role")
        text = _content_text(message.get("content"))
        if not first_user and message["role"] == "user":
            first_user = text
        lines.append(f"{message['role']}: {text}")
    return "\n".join(lines), first_user, chat_tokens(lines)


def _completion(body: dict[str, Any]) -> tuple[str, str, int]:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if isinstance(prompt, str):
        return prompt, prompt, text_tokens(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(token, int) for token in prompt):
        text = " ".join(str(token) for token in prompt)
        return text, text, len(prompt)
    raise BadRequestError("prompt: must be a string or a list of token ids")


def read_prompt(endpoint: Endpoint, body: Any) -> Prompt:
    """The routing view of a parsed JSON body; `BadRequestError` says what is wrong."""
    if not isinstance(body, dict):
        raise BadRequestError("the request body must be a JSON object")
    text, first_user, tokens = _chat(body) if endpoint == "chat" else _completion(body)
    model = body.get("model")
    return Prompt(
        endpoint=endpoint,
        text=text,
        first_user_message=first_user,
        tokens=tokens,
        requested_model=model if isinstance(model, str) else None,
        stream=bool(body.get("stream", False)),
    )
