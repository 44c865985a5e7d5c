"""One attempt at one replica: send the request, wait for the answer to start, then pass it
through to the client chunk by chunk, never buffering a streamed response.

Until the first chunk of the answer (streamed requests) or the whole answer (others) arrives,
any failure raises `AttemptFailedError`, which the caller may escalate. From the first byte sent to
the client on, nothing escalates: a failure then simply ends the response.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from thrifty.api import EscalationTrigger
from thrifty.router.escalation import trigger_for_status

# Hop-by-hop headers (RFC 9110 section 7.6.1) and those the two HTTP stacks set themselves.
_NOT_FORWARDED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "date",
        "server",
    }
)
_USAGE = re.compile(rb'"(prompt_tokens|completion_tokens)":\s*(\d+)')
_TAIL_BYTES = 256


class AttemptFailedError(Exception):
    """The replica did not start an answer; `status` and `body` are what the client gets if
    the request is not retried on another tier."""

    def __init__(self, trigger: EscalationTrigger, status: int, message: str, body: bytes | None = None):
        super().__init__(message)
        self.trigger = trigger
        self.status = status
        self.message = message
        self.body = body


@dataclass(slots=True)
class Usage:
    """Tokens of one answer: the replica's own report when it gave one, else estimates."""

    status: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int = 0


def forwarded_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The client's headers minus hop-by-hop ones, for the replica."""
    return {name: value for name, value in headers.items() if name.lower() not in _NOT_FORWARDED}


def _response_headers(upstream: aiohttp.ClientResponse, extra: Mapping[str, str]) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict(
        (name, value) for name, value in upstream.headers.items() if name.lower() not in _NOT_FORWARDED
    )
    headers.update(extra)
    return headers


def _read_usage(text: bytes, usage: Usage) -> None:
    for name, value in _USAGE.findall(text):
        if name == b"prompt_tokens":
            usage.prompt_tokens = int(value)
        else:
            usage.completion_tokens = int(value)


async def attempt(
    session: aiohttp.ClientSession,
    client_request: web.Request,
    *,
    url: URL,
    body: bytes,
    headers: Mapping[str, str],
    stream: bool,
    timeout_s: float,
    response_headers: Mapping[str, str],
    on_first_byte: Callable[[], None],
) -> tuple[web.StreamResponse, Usage]:
    """Forward one request to `url` and answer the client with the replica's response.

    Raises `AttemptFailedError` (nothing has been sent to the client then) when the replica cannot be
    reached, does not start answering within `timeout_s`, or answers 429 or 5xx.
    """
    upstream: aiohttp.ClientResponse | None = None
    handed_over = False
    try:
        try:
            async with asyncio.timeout(timeout_s):
                upstream = await session.post(url, data=body, headers=headers)
                trigger = trigger_for_status(upstream.status)
                if trigger is not None:
                    payload = await upstream.read()
                    raise AttemptFailedError(
                        trigger, upstream.status, f"replica answered {upstream.status}", payload
                    )
                first = await upstream.content.readany() if stream else await upstream.read()
        except TimeoutError:
            raise AttemptFailedError(
                EscalationTrigger.TIMEOUT, 504, f"the replica did not answer within {timeout_s:g}s"
            ) from None
        except (aiohttp.ClientError, OSError) as error:
            raise AttemptFailedError(
                EscalationTrigger.ERROR, 502, f"the replica failed: {error.__class__.__name__}: {error}"
            ) from None
        on_first_byte()
        handed_over = True
        extra = _response_headers(upstream, response_headers)
        usage = Usage(status=upstream.status)
        if not stream:
            _read_usage(first, usage)
            return web.Response(status=upstream.status, body=first, headers=extra), usage
        return await _pass_through(client_request, upstream, first, extra, usage), usage
    finally:
        if upstream is not None:
            # A started answer goes back to the pool once read (release closes it if it was
            # not read to the end); a failed attempt is aborted, so the replica stops working on it.
            if handed_over:
                upstream.release()
            else:
                upstream.close()


async def _pass_through(
    client_request: web.Request,
    upstream: aiohttp.ClientResponse,
    first: bytes,
    headers: CIMultiDict[str],
    usage: Usage,
) -> web.StreamResponse:
    response = web.StreamResponse(status=upstream.status, headers=headers)
    await response.prepare(client_request)
    events = 0
    tail = b""
    chunk = first
    try:
        while chunk:
            await response.write(chunk)
            events += chunk.count(b"data: ")
            window = tail + chunk
            if b'"usage"' in window:
                _read_usage(window, usage)
            tail = chunk[-_TAIL_BYTES:]
            chunk = await upstream.content.readany()
        await response.write_eof()
    except (aiohttp.ClientError, OSError, TimeoutError):
        # The replica broke off or the client left after the answer started: nothing can be
        # retried now; the client sees the stream end early.
        pass
    if usage.completion_tokens == 0:
        # One event per token, less the role chunk and [DONE] of a chat stream.
        usage.completion_tokens = max(0, events - 2)
    return response


def error_response(
    status: int, message: str, *, error_type: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """An error in the OpenAI shape that vLLM also uses."""
    body = {"error": {"message": message, "type": error_type, "param": None, "code": status}}
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers=dict(headers or {}),
    )
