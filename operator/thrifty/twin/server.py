"""The real-time driver: one twin as an HTTP server, on its own address, in a shared event loop.

    server = TwinServer(config, host="10.244.0.17")
    await server.start()        # listens at once; /health answers 503 while the model "loads"
    await server.wait_ready()   # after the load time, /health answers 200 and requests are served
    ...
    await server.stop()

The engine runs in a task that plans a step, sleeps for the step's duration, then delivers the
step's tokens to the waiting HTTP handlers. Time is the event loop's clock. Steps are laid end to
end on an ideal timeline (each starts when the previous one was due to end), so the event loop's
millisecond timer granularity delays tokens slightly but does not slow the engine; if the loop
falls far behind (an overloaded process), the timeline restarts from now instead of bursting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from thrifty.twin.config import EngineConfig
from thrifty.twin.engine import Engine, EngineRequest, RequestRejectedError, StepOutcome
from thrifty.twin.openai_api import (
    ApiError,
    CompletionCall,
    Kind,
    full_response,
    models_response,
    parse_call,
    stream_chunk,
    usage_chunk,
)
from thrifty.twin.tokens import synthetic_text
from thrifty.twin.vllm_metrics import VllmMetrics

# How far behind its ideal timeline the engine may run before it restarts the timeline from now.
_MAX_LAG_S = 0.05


@dataclass(slots=True)
class _TokenFeed:
    """What the engine task hands one HTTP handler: (new tokens, finish reason or None) events."""

    events: asyncio.Queue[tuple[int, str | None]] = field(default_factory=asyncio.Queue)


class TwinServer:
    """One twin of a vLLM server, serving vLLM's HTTP API at `host:port`."""

    def __init__(
        self,
        config: EngineConfig,
        *,
        host: str,
        port: int | None = None,
        load_seconds: float | None = None,
        step_time_scale: float = 1.0,
    ) -> None:
        """`port` defaults to the config's `--port` (0 picks a free one); `load_seconds` overrides
        the load time derived from the weight bytes (tests use a short one); `step_time_scale`
        makes every engine step that many times the calibrated time (a mis-calibrated engine)."""
        self.config = config
        self.engine = Engine(config, step_time_scale=step_time_scale)
        self.metrics = VllmMetrics(config, self.engine.sizing)
        self.host = host
        self.port = config.port if port is None else port
        self.load_seconds = self.engine.sizing.load_seconds if load_seconds is None else load_seconds
        self._ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._feeds: dict[str, _TokenFeed] = {}
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._created = int(time.time())
        self.fault: str | None = None
        """Set: the twin plays a vLLM whose engine died (the message says why). Inference
        requests answer 500 and /health answers 500, as vLLM does after an EngineDeadError;
        the testbed sets it from a pod annotation to show what the router does about it."""

    @property
    def ready(self) -> bool:
        """True once the simulated model load has finished."""
        return self._ready.is_set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Bind the address and begin loading; returns as soon as the server listens."""
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])
        self._tasks = [asyncio.create_task(self._load()), asyncio.create_task(self._run_engine())]

    async def wait_ready(self) -> None:
        """Return once the model has loaded."""
        await self._ready.wait()

    async def stop(self) -> None:
        """Stop serving and release the address; in-flight requests are cut off."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> TwinServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ---- engine task ----

    async def _load(self) -> None:
        await asyncio.sleep(self.load_seconds)
        self._ready.set()

    async def _run_engine(self) -> None:
        loop = asyncio.get_running_loop()
        engine = self.engine
        timeline = loop.time()
        while True:
            if not engine.has_work:
                self.metrics.record_state(engine)
                self._wake.clear()
                await self._wake.wait()
                timeline = loop.time()
                continue
            now = loop.time()
            if now - timeline > _MAX_LAG_S:
                timeline = now
            plan = engine.plan_step(timeline)
            if plan is None:  # nothing fits until a request leaves
                self._wake.clear()
                await self._wake.wait()
                timeline = loop.time()
                continue
            end = timeline + plan.duration_s
            await asyncio.sleep(max(0.0, end - loop.time()))
            outcome = engine.finish_step(plan, end)
            self.metrics.record_step(engine, outcome)
            self._deliver(outcome)
            timeline = end

    def _deliver(self, outcome: StepOutcome) -> None:
        finished = {request.request_id: request.finish_reason for request in outcome.finished}
        for request, count, _gap in outcome.emitted:
            feed = self._feeds.get(request.request_id)
            if feed is not None:
                feed.events.put_nowait((count, finished.get(request.request_id)))

    # ---- HTTP handlers ----

    async def _health(self, _request: web.Request) -> web.Response:
        if self.fault is not None:
            return web.Response(status=500)
        return web.Response(status=200 if self.ready else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        response = web.Response(body=self.metrics.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def _models(self, _request: web.Request) -> web.Response:
        if not self.ready:
            return _error(ApiError(503, "the model is still loading", error_type="ServiceUnavailableError"))
        return web.json_response(models_response(self.config, self._created))

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "completion")

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "chat")

    async def _serve(self, request: web.Request, kind: Kind) -> web.StreamResponse:
        if self.fault is not None:
            return _error(ApiError(500, f"engine dead: {self.fault}", error_type="InternalServerError"))
        if not self.ready:
            return _error(ApiError(503, "the model is still loading", error_type="ServiceUnavailableError"))
        try:
            body = await request.json()
        except json.JSONDecodeError as error:
            return _error(ApiError(400, f"the request body is not valid JSON: {error}"))
        try:
            call = parse_call(kind, body, request.headers, self.config)
        except ApiError as error:
            return _error(error)
        request_id = f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"
        loop = asyncio.get_running_loop()
        try:
            state = self.engine.add_request(
                EngineRequest(
                    request_id,
                    call.prompt_tokens,
                    call.max_output_tokens,
                    call.block_hashes,
                    call.stops_naturally,
                ),
                loop.time(),
            )
        except RequestRejectedError as error:
            return _error(ApiError(400, str(error)))
        feed = _TokenFeed()
        self._feeds[request_id] = feed
        self._wake.set()
        try:
            if call.stream:
                return await self._stream(request, call, request_id, feed)
            return await self._collect(call, request_id, feed)
        finally:
            del self._feeds[request_id]
            if state.finish_reason is None:  # the client left (or the server stops) mid-request
                aborted = self.engine.abort(request_id, loop.time())
                if aborted is not None:
                    self.metrics.record_finished(aborted)
                    self.metrics.record_state(self.engine)

    async def _collect(self, call: CompletionCall, request_id: str, feed: _TokenFeed) -> web.Response:
        produced = 0
        while True:
            count, finish_reason = await feed.events.get()
            produced += count
            if finish_reason is not None:
                break
        body = full_response(
            call,
            response_id=request_id,
            created=int(time.time()),
            model=self.config.served_model_name,
            text=synthetic_text(0, produced),
            finish_reason=finish_reason,
            completion_tokens=produced,
        )
        return web.json_response(body)

    async def _stream(
        self, request: web.Request, call: CompletionCall, request_id: str, feed: _TokenFeed
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        created = int(time.time())
        model = self.config.served_model_name

        async def send(payload: dict[str, Any]) -> None:
            await response.write(b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n")

        if call.kind == "chat":
            await send(
                stream_chunk(
                    call,
                    response_id=request_id,
                    created=created,
                    model=model,
                    text=None,
                    finish_reason=None,
                    first=True,
                )
            )
        produced = 0
        while True:
            count, finish_reason = await feed.events.get()
            text = synthetic_text(produced, count)
            produced += count
            await send(
                stream_chunk(
                    call,
                    response_id=request_id,
                    created=created,
                    model=model,
                    text=text,
                    finish_reason=finish_reason,
                )
            )
            if finish_reason is not None:
                break
        if call.include_usage:
            await send(
                usage_chunk(
                    call, response_id=request_id, created=created, model=model, completion_tokens=produced
                )
            )
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _error(error: ApiError) -> web.Response:
    return web.json_response(error.body(), status=error.status)
