"""Closed-loop load on a model's engines, straight at the ready pod IPs of its Service (inside the
testbed's namespace), for tests that need the control loop to see real batch utilization."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import aiohttp

from thrifty.twin.openai_api import PROMPT_TOKENS_HEADER

ENGINE_PORT = 8000


class EngineLoad:
    """``workers`` requests always in flight on the ready endpoints of Service ``service``, for at
    most ``seconds`` or until the ``with`` block ends; targets follow the EndpointSlices, so new
    replicas take load as soon as they are Ready. Requests name ``served_name`` (default: the
    Service's name, which is the model's) and tell the twin how long their prompt is.

    >>> with EngineLoad(discovery, "models", "chat", workers=48, seconds=240):
    ...     eventually(lambda: replicas() > 1, timeout=150, what="a scale-out")
    """

    def __init__(
        self,
        discovery: Any,
        namespace: str,
        service: str,
        *,
        workers: int,
        seconds: float,
        served_name: str | None = None,
        prompt_tokens: int = 1500,
        max_tokens: int = 200,
        distinct_prompts: bool = False,
    ) -> None:
        """``distinct_prompts``: every request a prompt of its own (else all share one, which the
        twin's prefix cache serves almost entirely from cache)."""
        self.discovery, self.namespace, self.service = discovery, namespace, service
        self.served_name = served_name or service
        self.workers, self.seconds = workers, seconds
        self.prompt_tokens, self.max_tokens = prompt_tokens, max_tokens
        self.distinct_prompts = distinct_prompts
        self.completed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def ready_addresses(self) -> list[str]:
        slices = self.discovery.list_namespaced_endpoint_slice(
            self.namespace, label_selector=f"kubernetes.io/service-name={self.service}"
        ).items
        return [
            address
            for endpoint_slice in slices
            for endpoint in endpoint_slice.endpoints or []
            if endpoint.conditions.ready
            for address in endpoint.addresses
        ]

    def _running(self, deadline: float) -> bool:
        return not self._stop.is_set() and time.monotonic() < deadline

    async def _run(self) -> None:
        deadline = time.monotonic() + self.seconds
        targets: list[str] = []
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout) as session:

            async def follow_endpoints() -> None:
                while self._running(deadline):
                    targets[:] = await asyncio.to_thread(self.ready_addresses)
                    await asyncio.sleep(1)

            async def worker(first: int) -> None:
                sent = first
                while self._running(deadline):
                    if not targets:
                        await asyncio.sleep(0.2)
                        continue
                    url = f"http://{targets[sent % len(targets)]}:{ENGINE_PORT}/v1/completions"
                    sent += 1
                    prompt = f"request {first}-{sent}" if self.distinct_prompts else "x"
                    body = {"model": self.served_name, "prompt": prompt, "max_tokens": self.max_tokens}
                    headers = {PROMPT_TOKENS_HEADER: str(self.prompt_tokens)}
                    try:
                        async with session.post(url, json=body, headers=headers) as response:
                            await response.read()
                            self.completed += response.status == 200
                    except (aiohttp.ClientError, TimeoutError):
                        await asyncio.sleep(0.1)  # a replica going away, or too slow, mid-request

            await asyncio.gather(follow_endpoints(), *(worker(i) for i in range(self.workers)))

    def __enter__(self) -> EngineLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=70)
