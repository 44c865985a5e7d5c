"""A client of Thrifty's router for the tests: OpenAI chat completions (streamed or not) and the
router's own Prometheus metrics, over plain http.client."""

from __future__ import annotations

import http.client
import json
import re
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: str
    chunk_times: list[float]
    """When each streamed `data:` event arrived (monotonic seconds)."""

    @property
    def tier(self) -> str:
        return self.headers.get("x-thrifty-tier", "")

    @property
    def replica(self) -> str:
        return self.headers.get("x-thrifty-replica", "")


def chat(
    address: str,
    messages: list[dict[str, str]],
    *,
    headers: dict[str, str] | None = None,
    stream: bool = False,
    max_tokens: int = 8,
) -> Reply:
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    payload = {"model": "assistant", "messages": messages, "max_tokens": max_tokens, "stream": stream}
    connection.request(
        "POST",
        "/v1/chat/completions",
        json.dumps(payload),
        {"content-type": "application/json", **(headers or {})},
    )
    response = connection.getresponse()
    lines, times = [], []
    while line := response.readline():
        text = line.decode()
        lines.append(text)
        if text.startswith("data:"):
            times.append(time.monotonic())
    connection.close()
    return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, "".join(lines), times)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def metric(address: str, name: str, **labels: str) -> float:
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(r"([^{ ]+)(?:\{([^}]*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            total += float(match.group(3))
    return total
