"""The OpenAI-compatible request and response shapes the twin speaks, as pure functions.

Twin-only request controls, for load generators that replay traces without building real text:

- `twin_prompt_tokens` (body field) or the `X-Twin-Prompt-Tokens` header: the prompt's length in
  tokens, replacing the ~4-characters-per-token estimate of its text;
- `twin_hash_ids` (body field, list of ints) with `twin_hash_block_tokens` (default 512): prefix
  identity as a trace gives it (equal ids are equal prefix blocks), replacing hashes of the text.

Output length: `max_tokens` (or `max_completion_tokens` for chat) is honoured exactly, finishing
with reason `length`, as vLLM does with `ignore_eos`. Without it, chat replies stop "naturally"
after `NATURAL_REPLY_TOKENS` tokens (reason `stop`) and completions after 16 tokens, vLLM's
default `max_tokens` for the completions API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from thrifty.twin.block_hashes import hashes_from_text, hashes_from_trace_ids
from thrifty.twin.config import EngineConfig
from thrifty.twin.tokens import count_chat_tokens, count_text_tokens

PROMPT_TOKENS_HEADER = "X-Twin-Prompt-Tokens"
NATURAL_REPLY_TOKENS = 128
_COMPLETIONS_DEFAULT_MAX_TOKENS = 16

Kind = Literal["chat", "completion"]


class ApiError(Exception):
    """An error answered as JSON in vLLM's error shape."""

    def __init__(
        self, status: int, message: str, *, error_type: str = "BadRequestError", param: str | None = None
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.param = param

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.status,
            }
        }


@dataclass(frozen=True, slots=True)
class CompletionCall:
    """A parsed `/v1/completions` or `/v1/chat/completions` request."""

    kind: Kind
    prompt_tokens: int
    max_output_tokens: int
    stops_naturally: bool
    stream: bool
    include_usage: bool
    block_hashes: tuple[int, ...]


def _positive_int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ApiError(400, f"{field}: must be a positive integer, got {value!r}", param=field)
    return value


def _chat_contents(messages: Any) -> list[str]:
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages: must be a non-empty list of {role, content} objects", param="messages")
    contents: list[str] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message:
            raise ApiError(400, f"messages[{index}]: must be an object with a role", param="messages")
        content = message.get("content") or ""
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        contents.append(f"{message['role']}: {content}")
    return contents


def _completion_prompt(prompt: Any) -> tuple[str, int]:
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if isinstance(prompt, str):
        return prompt, count_text_tokens(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(token, int) for token in prompt):
        return " ".join(str(token) for token in prompt), len(prompt)
    raise ApiError(
        400,
        "prompt: must be one string or one list of token ids (the twin serves one prompt per request)",
        param="prompt",
    )


def parse_call(kind: Kind, body: Any, headers: Mapping[str, str], config: EngineConfig) -> CompletionCall:
    """Validate a request body against the served model; `ApiError` says what is wrong."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    model = body.get("model")
    if model is not None and model not in (config.served_model_name, config.model):
        raise ApiError(404, f"The model `{model}` does not exist.", error_type="NotFoundError", param="model")
    if body.get("n", 1) != 1:
        raise ApiError(400, "n: the twin generates one choice per request", param="n")

    if kind == "chat":
        contents = _chat_contents(body.get("messages"))
        text = "\n".join(contents)
        estimated = count_chat_tokens(contents)
        requested = body.get("max_completion_tokens", body.get("max_tokens"))
        default_max = NATURAL_REPLY_TOKENS
    else:
        text, estimated = _completion_prompt(body.get("prompt"))
        requested = body.get("max_tokens")
        default_max = _COMPLETIONS_DEFAULT_MAX_TOKENS

    forced = body.get("twin_prompt_tokens", headers.get(PROMPT_TOKENS_HEADER))
    if isinstance(forced, str):
        if not forced.strip().isdigit():
            raise ApiError(400, f"{PROMPT_TOKENS_HEADER}: must be a positive integer, got {forced!r}")
        forced = int(forced)
    prompt_tokens = _positive_int(forced, "twin_prompt_tokens") if forced is not None else max(1, estimated)

    room = config.max_model_len - prompt_tokens
    if requested is not None:
        max_output = _positive_int(requested, "max_tokens")
        stops_naturally = False
    else:
        max_output = max(1, min(default_max, room))
        stops_naturally = kind == "chat"

    hash_ids = body.get("twin_hash_ids")
    if hash_ids is not None:
        if not isinstance(hash_ids, list) or not all(isinstance(item, int) for item in hash_ids):
            raise ApiError(400, "twin_hash_ids: must be a list of integers", param="twin_hash_ids")
        trace_block = _positive_int(body.get("twin_hash_block_tokens", 512), "twin_hash_block_tokens")
        if trace_block % config.block_size:
            raise ApiError(
                400,
                f"twin_hash_block_tokens: {trace_block} is not a multiple of the block size {config.block_size}",
                param="twin_hash_block_tokens",
            )
        hashes = hashes_from_trace_ids(
            hash_ids, prompt_tokens, trace_block_tokens=trace_block, block_size=config.block_size
        )
    else:
        hashes = hashes_from_text(text, prompt_tokens, block_size=config.block_size)

    stream = bool(body.get("stream", False))
    options = body.get("stream_options") or {}
    include_usage = stream and isinstance(options, dict) and bool(options.get("include_usage", False))
    return CompletionCall(kind, prompt_tokens, max_output, stops_naturally, stream, include_usage, hashes)


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
        "prompt_tokens_details": None,
    }


def full_response(
    call: CompletionCall,
    *,
    response_id: str,
    created: int,
    model: str,
    text: str,
    finish_reason: str,
    completion_tokens: int,
) -> dict[str, Any]:
    """The non-streaming response body."""
    choice: dict[str, Any] = {
        "index": 0,
        "logprobs": None,
        "finish_reason": finish_reason,
        "stop_reason": None,
    }
    if call.kind == "chat":
        choice["message"] = {"role": "assistant", "content": text, "tool_calls": []}
        kind = "chat.completion"
    else:
        choice["text"] = text
        kind = "text_completion"
    return {
        "id": response_id,
        "object": kind,
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": usage(call.prompt_tokens, completion_tokens),
    }


def stream_chunk(
    call: CompletionCall,
    *,
    response_id: str,
    created: int,
    model: str,
    text: str | None,
    finish_reason: str | None,
    first: bool = False,
) -> dict[str, Any]:
    """One `data:` chunk of a streamed response; chat's first chunk announces the assistant role."""
    choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": finish_reason}
    if call.kind == "chat":
        delta: dict[str, Any] = {"role": "assistant", "content": ""} if first else {}
        if text:
            delta["content"] = text
        choice["delta"] = delta
        kind = "chat.completion.chunk"
    else:
        choice["text"] = text or ""
        choice["stop_reason"] = None
        kind = "text_completion"
    return {"id": response_id, "object": kind, "created": created, "model": model, "choices": [choice]}


def usage_chunk(
    call: CompletionCall, *, response_id: str, created: int, model: str, completion_tokens: int
) -> dict[str, Any]:
    """The last chunk of a stream when `stream_options.include_usage` is set: no choices, the usage."""
    kind = "chat.completion.chunk" if call.kind == "chat" else "text_completion"
    return {
        "id": response_id,
        "object": kind,
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage(call.prompt_tokens, completion_tokens),
    }


def models_response(config: EngineConfig, created: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                "id": config.served_model_name,
                "object": "model",
                "created": created,
                "owned_by": "vllm",
                "root": config.model,
                "parent": None,
                "max_model_len": config.max_model_len,
                "permission": [],
            }
        ],
    }
