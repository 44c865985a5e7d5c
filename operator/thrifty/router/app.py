"""The router process's state and HTTP handlers: OpenAI-compatible endpoints in front of tiers.

Per completion request: read the prompt, pick the tier (`selection`), admit it (`admission`,
waiting in the tier's queue when every replica is at its cap), pick the replica (`tier_state`),
forward it (`upstream`), and on failure before the answer started, retry once on the next tier
up (`escalation`). Everything that decides is a pure module; this one only wires them to aiohttp.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from thrifty.api import EscalationTrigger, ModelBackend, RouterConfig
from thrifty.k8s.endpoints import ReadyAddresses
from thrifty.router.admission import Admission, admit, retry_after_seconds
from thrifty.router.classifier import TierClassifier
from thrifty.router.escalation import escalation_target
from thrifty.router.kv_capacity import kv_capacity_tokens
from thrifty.router.metrics import RouterMetrics, TierMetrics, TierSnapshot
from thrifty.router.prompt import BadRequestError, Endpoint, Prompt, read_prompt
from thrifty.router.selection import SelectedBy, TierSelector
from thrifty.router.tier_queue import QueueTimeoutError, TierQueue
from thrifty.router.tier_state import Routed, TierState
from thrifty.router.upstream import AttemptFailedError, Usage, attempt, error_response, forwarded_headers
from thrifty.router.wake import WakeRequester

log = logging.getLogger(__name__)

TIER_HEADER = "x-thrifty-tier"
REPLICA_HEADER = "x-thrifty-replica"
ESCALATED_HEADER = "x-thrifty-escalated-from"
SERVICE_REPLICA = "service"
"""The replica name of requests sent to the tier's Service because discovery is unavailable."""


class _NoReplicaError(Exception):
    """The tier has no ready replica, or its queue refused the request."""

    def __init__(self, trigger: EscalationTrigger, response: web.Response) -> None:
        super().__init__(trigger.value)
        self.trigger = trigger
        self.response = response


@dataclass
class TierRuntime:
    """One tier in the running router: its backend, its replicas, its queue, its metrics."""

    name: str
    backend: ModelBackend
    cost_weight: float
    state: TierState
    queue: TierQueue[Routed]
    metrics: TierMetrics

    def snapshot(self) -> TierSnapshot:
        return TierSnapshot(
            name=self.name,
            cap=self.state.cap,
            queue_length=len(self.queue),
            in_flight={replica: self.state.stats[replica].in_flight for replica in self.state.replicas},
        )


class Router:
    """Configuration, tiers and the upstream connection pool of one router process."""

    def __init__(
        self, config: RouterConfig, classifier: TierClassifier | None, waker: WakeRequester | None = None
    ) -> None:
        self.metrics = RouterMetrics(self._snapshots)
        self.waker = waker
        """Asks models scaled to zero to wake; None without API access (static endpoints)."""
        self.tiers: list[TierRuntime] = []
        self.session: aiohttp.ClientSession | None = None
        self.discovery_synced = False
        """True once endpoint discovery delivered a full picture; until then requests go to the
        tiers' Services (failing open to kube-proxy's choice)."""
        self._ready: ReadyAddresses = {}
        self._probed: set[str] = set()
        self._urls: dict[tuple[str, str], URL] = {}
        self._counters: dict[tuple[str, ...], Any] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.config = config
        self.selector: TierSelector
        self._attempt_timeout_s: float
        self._queue_timeout_s: float
        self._cold_start_timeout_s: float
        self.apply_config(config, classifier)

    # ---- configuration and discovery ----

    def apply_config(self, config: RouterConfig, classifier: TierClassifier | None) -> None:
        """Take a new configuration; tiers whose model stays keep their replicas, counts and cache picture."""
        previous = {tier.backend.service: tier for tier in self.tiers}
        tiers: list[TierRuntime] = []
        for position, spec in enumerate(config.spec.tiers):
            backend = config.backend(position)
            kept = previous.pop(backend.service, None)
            state = (
                kept.state if kept is not None else TierState(spec.name, affinity=config.spec.affinity, cap=1)
            )
            state.name = spec.name
            state.affinity = config.spec.affinity
            state.cap = config.cap(position)
            queue: TierQueue[Routed] = kept.queue if kept is not None else TierQueue()
            tiers.append(
                TierRuntime(spec.name, backend, spec.cost_weight, state, queue, self.metrics.tier(spec.name))
            )
        for gone in previous.values():
            gone.queue.fail_all(QueueTimeoutError())
        self.config = config
        self.tiers = tiers
        # Parsed once per configuration: the request path should not re-read duration strings.
        self._attempt_timeout_s = config.spec.escalation.attempt_timeout_seconds
        self._queue_timeout_s = config.spec.admission.queue_timeout_seconds
        self._cold_start_timeout_s = config.spec.admission.cold_start_timeout_seconds
        self.selector = TierSelector(
            config.spec,
            served_names=[config.backend(position).served_name for position in range(len(tiers))],
            classifier=classifier,
        )
        if classifier is not None:
            unknown = sorted(set(classifier.tiers) - {tier.name for tier in tiers})
            if unknown:
                log.warning(
                    "classifier predicts tiers %s that spec.tiers does not have; they fall back to the default tier",
                    unknown,
                )
        self.apply_endpoints(self._ready, synced=self.discovery_synced)

    def open(self, session: aiohttp.ClientSession) -> None:
        """Start forwarding through `session` (and probing replicas' KV capacity)."""
        self.session = session
        self.apply_endpoints(self._ready, synced=self.discovery_synced)

    def apply_endpoints(self, ready: ReadyAddresses, *, synced: bool = True) -> None:
        """The ready replicas of every Service, from discovery."""
        self._ready = ready
        self.discovery_synced = self.discovery_synced or synced
        for tier in self.tiers:
            addresses = ready.get(tier.backend.service, ())
            tier.state.set_replicas(addresses)
            for address in addresses:
                if address not in self._probed and self.session is not None:
                    self._probed.add(address)
                    self._spawn(self._probe_kv_capacity(tier, address))
            self._wake(tier)

    async def _probe_kv_capacity(self, tier: TierRuntime, address: str) -> None:
        """Size the cache picture of a new replica from its vLLM /metrics (best effort)."""
        assert self.session is not None
        try:
            async with self.session.get(
                f"http://{address}/metrics", timeout=aiohttp.ClientTimeout(total=5)
            ) as response:
                tokens = kv_capacity_tokens(await response.text())
        except (aiohttp.ClientError, OSError, TimeoutError):
            tokens = None
        if tokens is not None:
            tier.state.set_kv_capacity(address, tokens)
        else:
            self._probed.discard(address)  # try again when discovery next reports it

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _snapshots(self) -> Iterable[TierSnapshot]:
        return [tier.snapshot() for tier in self.tiers]

    # ---- the request path ----

    async def complete(self, request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
        try:
            raw = await request.read()
            body = json.loads(raw)
            prompt = read_prompt(endpoint, body)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            return error_response(
                400, f"the request body is not valid JSON: {error}", error_type="BadRequestError"
            )
        except BadRequestError as error:
            return error_response(400, str(error), error_type="BadRequestError")
        choice = self.selector.select(prompt, request.headers)
        position = choice.tier
        escalated_from: str | None = None
        predicted = choice.predicted
        if (
            choice.selected_by == SelectedBy.LOW_CONFIDENCE
            and predicted is not None
            and predicted != position
        ):
            self.metrics.escalations.labels(
                self.tiers[predicted].name, self.tiers[position].name, EscalationTrigger.LOW_CONFIDENCE.value
            ).inc()
        escalations = 0
        while True:
            tier = self.tiers[position]
            try:
                return await self._serve_on(tier, request, body, prompt, escalated_from)
            except (_NoReplicaError, AttemptFailedError) as failure:
                trigger = failure.trigger
                target = escalation_target(
                    position,
                    len(self.tiers),
                    trigger,
                    allowed=self.config.spec.escalation.triggers,
                    escalations_so_far=escalations,
                    response_started=False,
                )
                if target is None:
                    response = (
                        failure.response
                        if isinstance(failure, _NoReplicaError)
                        else _failed_response(failure)
                    )
                    response.headers[TIER_HEADER] = tier.name
                    self.metrics.requests.labels(tier.name, str(response.status)).inc()
                    return response
                self.metrics.escalations.labels(tier.name, self.tiers[target].name, trigger.value).inc()
                escalated_from = tier.name
                escalations += 1
                position = target

    async def _serve_on(
        self,
        tier: TierRuntime,
        request: web.Request,
        body: dict[str, Any],
        prompt: Prompt,
        escalated_from: str | None,
    ) -> web.StreamResponse:
        routed = await self._admit(tier, prompt, request.headers)
        replica = routed.replica if routed is not None else SERVICE_REPLICA
        if routed is not None:
            self._inc(self.metrics.picks, tier.name, routed.pick.reason.value)
            address = routed.replica
        else:
            self.metrics.fail_open.labels(tier.name, "no_discovery").inc()
            address = f"{tier.backend.service}.{self.config.namespace}.svc:{tier.backend.port}"
        body["model"] = tier.backend.served_name
        extra = {TIER_HEADER: tier.name, REPLICA_HEADER: replica}
        if escalated_from is not None:
            extra[ESCALATED_HEADER] = escalated_from
        started = time.monotonic()

        def first_byte() -> None:
            tier.metrics.first_byte_seconds.observe(time.monotonic() - started)
            if routed is not None:
                tier.state.first_token(routed.ticket)

        assert self.session is not None
        try:
            response, usage = await attempt(
                self.session,
                request,
                url=self._url(address, request.path),
                body=json.dumps(body).encode(),
                headers=forwarded_headers(request.headers),
                stream=prompt.stream,
                timeout_s=self._attempt_timeout_s,
                response_headers=extra,
                on_first_byte=first_byte,
            )
        finally:
            if routed is not None:
                tier.state.finish(routed.ticket)
                self._wake(tier)
        self._count(tier, prompt, usage)
        return response

    async def _admit(self, tier: TierRuntime, prompt: Prompt, headers: Mapping[str, str]) -> Routed | None:
        """A replica for the request (waiting if all are at their cap); None means: no discovery
        yet, send to the Service. Raises `_NoReplicaError` when the tier cannot take it."""
        state = tier.state
        admission = self.config.spec.admission
        timeout_s, timeout = self._queue_timeout_s, admission.queue_timeout
        cold = not state.replicas
        if cold:
            if not self.discovery_synced:
                return None
            model = tier.backend.wake_model
            if model is None or self.waker is None:
                raise _NoReplicaError(
                    EscalationTrigger.OVERLOAD,
                    error_response(
                        503,
                        f"tier {tier.name}: no ready replica of {tier.backend.service}",
                        error_type="ServiceUnavailableError",
                        headers={"Retry-After": "5"},
                    ),
                )
            # Scaled to zero: ask for a replica and hold the request through the cold start.
            if self.waker.request(model):
                self.metrics.wakes.labels(tier.name).inc()
            timeout_s, timeout = self._cold_start_timeout_s, admission.cold_start_timeout
        identity = state.identify(prompt, headers)
        decision = admit(
            has_room=not cold and state.has_room(), queued=len(tier.queue), queue_limit=admission.queue_limit
        )
        if decision == Admission.DISPATCH:
            routed = state.route_identified(identity)
            if routed is not None:
                return routed
            decision = admit(has_room=False, queued=len(tier.queue), queue_limit=admission.queue_limit)
        if decision == Admission.REJECT:
            raise _NoReplicaError(
                EscalationTrigger.OVERLOAD,
                error_response(
                    429,
                    f"tier {tier.name}: every replica is at its cap and {len(tier.queue)} requests are queued",
                    error_type="TooManyRequestsError",
                ),
            )
        waited = time.monotonic()
        try:
            routed = await tier.queue.wait(
                lambda: state.route_identified(identity),
                timeout_s,
                release=lambda placed: self._release(tier, placed),
            )
        except QueueTimeoutError:
            tier.metrics.queue_seconds.observe(time.monotonic() - waited)
            retry = retry_after_seconds(timeout_s)
            why = "no replica started" if cold else "no replica had room"
            response = error_response(
                503,
                f"tier {tier.name}: {why} within {timeout}",
                error_type="ServiceUnavailableError",
                headers={"Retry-After": str(retry)},
            )
            self.metrics.requests.labels(tier.name, "503").inc()
            raise _QueueTimedOutError(response) from None
        tier.metrics.queue_seconds.observe(time.monotonic() - waited)
        return routed

    def _url(self, address: str, path: str) -> URL:
        # Parsing a URL per request costs more than the routing decision; addresses repeat.
        url = self._urls.get((address, path))
        if url is None:
            if len(self._urls) > 4096:
                self._urls.clear()
            url = self._urls[(address, path)] = URL(f"http://{address}{path}", encoded=True)
        return url

    def _inc(self, counter: Any, *labels: str) -> None:
        """Increment a labelled counter through a cached child (a label lookup costs microseconds)."""
        key = (str(id(counter)), *labels)
        child = self._counters.get(key)
        if child is None:
            child = self._counters[key] = counter.labels(*labels)
        child.inc()

    def _release(self, tier: TierRuntime, routed: Routed) -> None:
        tier.state.finish(routed.ticket)
        self._wake(tier)

    def _wake(self, tier: TierRuntime) -> None:
        if len(tier.queue):
            tier.queue.wake()

    def _count(self, tier: TierRuntime, prompt: Prompt, usage: Usage) -> None:
        prompt_tokens = usage.prompt_tokens if usage.prompt_tokens is not None else prompt.tokens
        tier.metrics.prompt_tokens.inc(prompt_tokens)
        tier.metrics.completion_tokens.inc(usage.completion_tokens)
        tier.metrics.cost.inc((prompt_tokens + usage.completion_tokens) * tier.cost_weight)
        self._inc(self.metrics.requests, tier.name, str(usage.status))

    # ---- /v1/models ----

    def models_listing(self) -> dict[str, Any]:
        created = 0
        ids = [self.config.name, *(tier.name for tier in self.tiers)]
        return {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": created, "owned_by": "thrifty"} for name in ids
            ],
        }


class _QueueTimedOutError(Exception):
    """A queue timeout: answered 503 with Retry-After, never escalated (the wait is spent)."""

    def __init__(self, response: web.Response) -> None:
        super().__init__("queue timeout")
        self.response = response


def _failed_response(failure: AttemptFailedError) -> web.Response:
    if failure.body is not None:
        return web.Response(status=failure.status, body=failure.body, content_type="application/json")
    error_type = "GatewayTimeoutError" if failure.status == 504 else "BadGatewayError"
    return error_response(failure.status, failure.message, error_type=error_type)


def build_app(router: Router) -> web.Application:
    """The aiohttp application: OpenAI endpoints, /health and /metrics."""

    async def chat(request: web.Request) -> web.StreamResponse:
        return await _answer(router, request, "chat")

    async def completions(request: web.Request) -> web.StreamResponse:
        return await _answer(router, request, "completion")

    async def models(_request: web.Request) -> web.Response:
        return web.json_response(router.models_listing())

    async def health(_request: web.Request) -> web.Response:
        tiers = {tier.name: len(tier.state.replicas) for tier in router.tiers}
        return web.json_response(
            {"status": "ok", "discovery": router.discovery_synced, "readyReplicas": tiers}
        )

    async def metrics(_request: web.Request) -> web.Response:
        response = web.Response(body=router.metrics.exposition())
        response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
        return response

    async def open_session(_app: web.Application) -> None:
        # One pool for every replica; keep-alive connections make a forwarded request cost one
        # write and one read, not a TCP handshake.
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=60, ttl_dns_cache=30)
        router.open(
            aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),  # a proxy keeps no cookies of its own
            )
        )

    async def close_session(_app: web.Application) -> None:
        if router.session is not None:
            await router.session.close()

    app = web.Application(client_max_size=64 * 2**20)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    return app


async def _answer(router: Router, request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
    try:
        return await router.complete(request, endpoint)
    except _QueueTimedOutError as timed_out:
        return timed_out.response
