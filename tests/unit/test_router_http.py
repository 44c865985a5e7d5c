"""The router process on loopback, in front of twins and scripted replicas: streaming passes
through chunk by chunk, rules pick tiers, failures escalate once (never after the answer
started), the cap and queue answer 429 and 503, and conversations stay on their replica."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from thrifty.router.app import Router, build_app
from thrifty.router.classifier import TierClassifier
from thrifty.router.config import parse_config
from thrifty.twin import TwinServer, engine_config_from_vllm_args

Scenario = Callable[["Setup"], Awaitable[None]]


class Setup:
    """A router on 127.0.0.1 with its tiers' replicas; `post` talks to the router."""

    def __init__(
        self, router: Router, port: int, session: aiohttp.ClientSession, hits: dict[str, int]
    ) -> None:
        self.router = router
        self.url = f"http://127.0.0.1:{port}"
        self.session = session
        self.hits = hits

    async def post(self, body: dict[str, Any], **headers: str) -> tuple[aiohttp.ClientResponse, bytes]:
        async with self.session.post(
            f"{self.url}/v1/chat/completions", json=body, headers=headers
        ) as response:
            return response, await response.read()

    def metric(self, name: str, **labels: str) -> float:
        value = self.router.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


def twin(served: str) -> TwinServer:
    # Llama-3.2-1B on an H100 steps in about 2 ms: a test's requests take milliseconds.
    config = engine_config_from_vllm_args(
        {"model": "meta-llama/Llama-3.2-1B-Instruct", "served_model_name": [served], "max_model_len": 4096},
        gpu_product="NVIDIA-H100-80GB-HBM3",
    )
    return TwinServer(config, host="127.0.0.1", port=0, load_seconds=0.0)


async def listen(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, int(runner.addresses[0][1])


def chat(text: str, **fields: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], "max_tokens": 4, **fields}


def run(
    scenario: Scenario,
    *,
    tiers: dict[str, int | Callable[[web.Request], Awaitable[web.StreamResponse]] | None],
    spec: dict[str, Any] | None = None,
    classifier: TierClassifier | None = None,
) -> None:
    """Run `scenario` against a router whose tiers (in order) are served by N twins, by one
    scripted handler, or (None) by no ready replica."""

    async def main() -> None:
        hits: dict[str, int] = {}
        twins: list[TwinServer] = []
        runners: list[web.AppRunner] = []
        endpoints: dict[str, tuple[str, ...]] = {}
        for name, backend in tiers.items():
            if backend is None:
                endpoints[name] = ()
            elif isinstance(backend, int):
                started = [twin(name) for _ in range(backend)]
                for server in started:
                    await server.start()
                twins += started
                endpoints[name] = tuple(f"127.0.0.1:{server.port}" for server in started)
            else:
                handler = backend
                hits[name] = 0

                async def counted(request: web.Request, name: str = name, handler: Any = handler) -> Any:
                    hits[name] += 1
                    return await handler(request)

                app = web.Application()
                app.router.add_post("/v1/chat/completions", counted)
                runner, port = await listen(app)
                runners.append(runner)
                endpoints[name] = (f"127.0.0.1:{port}",)
        config = parse_config(
            json.dumps(
                {
                    "name": "assistant",
                    "namespace": "test",
                    "spec": {"tiers": [{"name": name, "model": name} for name in tiers], **(spec or {})},
                    "models": {name: {"service": name, "servedName": name} for name in tiers},
                    "classifierPath": "/unused" if classifier is not None else None,
                }
            )
        )
        router = Router(config, classifier)
        runner, port = await listen(build_app(router))
        router.apply_endpoints(endpoints)
        try:
            async with aiohttp.ClientSession() as session:
                await asyncio.wait_for(scenario(Setup(router, port, session, hits)), timeout=20)
        finally:
            await runner.cleanup()
            for other in runners:
                await other.cleanup()
            for server in twins:
                await server.stop()

    asyncio.run(main())


# ---- scripted replicas ----


async def failing(_request: web.Request) -> web.Response:
    return web.json_response({"error": {"message": "CUDA error"}}, status=500)


async def slow(_request: web.Request) -> web.Response:
    await asyncio.sleep(0.4)
    return web.json_response({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}})


async def dies_after_first_chunk(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(b'data: {"choices": [{"delta": {"content": "par"}}]}\n\n')
    await asyncio.sleep(0.05)
    assert request.transport is not None
    request.transport.close()  # the replica crashes mid-answer
    return response


async def three_slow_chunks(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for index in range(3):
        await response.write(f'data: {{"n": {index}, "sent": {time.monotonic()}}}\n\n'.encode())
        await asyncio.sleep(0.15)
    await response.write(b"data: [DONE]\n\n")
    return response


# ---- tests ----


def test_streamed_answer_reaches_the_client_chunk_by_chunk() -> None:
    async def scenario(setup: Setup) -> None:
        arrivals: list[tuple[float, bytes]] = []
        async with setup.session.post(
            f"{setup.url}/v1/chat/completions", json=chat("hi", stream=True)
        ) as response:
            async for chunk in response.content.iter_any():
                arrivals.append((time.monotonic(), chunk))
        first_sent = json.loads(arrivals[0][1].split(b"\n")[0].removeprefix(b"data: "))["sent"]

        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        assert len(arrivals) >= 3
        # The first chunk arrived long before the replica wrote its last one (0.3 s later).
        assert arrivals[0][0] - first_sent < 0.1
        assert arrivals[-1][0] - arrivals[0][0] > 0.25

    run(scenario, tiers={"small": three_slow_chunks})


def test_streaming_from_a_twin_ends_with_done_and_counts_tokens() -> None:
    async def scenario(setup: Setup) -> None:
        response, body = await setup.post(chat("hello", stream=True, max_tokens=6))

        events = [line for line in body.decode().split("\n\n") if line.startswith("data: ")]
        assert response.status == 200
        assert events[-1] == "data: [DONE]"
        assert setup.metric("thrifty_router_completion_tokens_total", tier="small") == 6

    run(scenario, tiers={"small": 1})


def test_rules_pick_the_tier_and_the_model_field_is_rewritten() -> None:
    async def scenario(setup: Setup) -> None:
        _, plain = await setup.post(chat("hello", model="assistant"))
        response, hard = await setup.post(chat("please prove this theorem", model="assistant"))

        assert json.loads(plain)["model"] == "small"
        assert json.loads(hard)["model"] == "large"
        assert response.headers["x-thrifty-tier"] == "large"
        assert setup.metric("thrifty_router_cost_total", tier="large") > setup.metric(
            "thrifty_router_cost_total", tier="small"
        )

    run(
        scenario,
        tiers={"small": 1, "large": 1},
        spec={
            "tiers": [
                {"name": "small", "model": "small"},
                {"name": "large", "model": "large", "costWeight": 10},
            ],
            "selection": {"rules": [{"tier": "large", "keywords": ["prove"]}]},
        },
    )


def test_an_upstream_error_escalates_once_to_the_next_tier() -> None:
    async def scenario(setup: Setup) -> None:
        response, body = await setup.post(chat("hello"))

        assert response.status == 200
        assert json.loads(body)["model"] == "large"
        assert response.headers["x-thrifty-escalated-from"] == "small"
        assert setup.hits["small"] == 1
        assert (
            setup.metric(
                "thrifty_router_escalations_total", from_tier="small", to_tier="large", trigger="Error"
            )
            == 1
        )

    run(scenario, tiers={"small": failing, "large": 1})


def test_a_tier_without_ready_replicas_escalates_as_overload() -> None:
    async def scenario(setup: Setup) -> None:
        response, _ = await setup.post(chat("hello"))

        assert (response.status, response.headers["x-thrifty-tier"]) == (200, "large")
        assert (
            setup.metric(
                "thrifty_router_escalations_total", from_tier="small", to_tier="large", trigger="Overload"
            )
            == 1
        )

    run(scenario, tiers={"small": None, "large": 1})


def test_a_timeout_escalates_and_the_top_tier_error_is_returned_as_is() -> None:
    async def scenario(setup: Setup) -> None:
        timed_out, _ = await setup.post(chat("hello"))

        assert timed_out.status == 500
        assert timed_out.headers["x-thrifty-tier"] == "large"
        assert (
            setup.metric(
                "thrifty_router_escalations_total", from_tier="small", to_tier="large", trigger="Timeout"
            )
            == 1
        )

    run(scenario, tiers={"small": slow, "large": failing}, spec={"escalation": {"attemptTimeout": "100ms"}})


def test_no_escalation_once_the_answer_started_streaming() -> None:
    async def scenario(setup: Setup) -> None:
        response, body = await setup.post(chat("hello", stream=True))

        assert response.status == 200
        assert b"par" in body
        assert setup.hits == {"small": 1, "large": 0}
        assert (
            setup.metric(
                "thrifty_router_escalations_total", from_tier="small", to_tier="large", trigger="Error"
            )
            == 0
        )

    run(scenario, tiers={"small": dies_after_first_chunk, "large": failing})


def test_escalation_is_off_for_unlisted_triggers() -> None:
    async def scenario(setup: Setup) -> None:
        response, _ = await setup.post(chat("hello"))

        assert (response.status, setup.hits["large"]) == (500, 0)

    run(scenario, tiers={"small": failing, "large": failing}, spec={"escalation": {"triggers": ["Timeout"]}})


def test_full_queue_is_429_and_queue_timeout_is_503_with_retry_after() -> None:
    async def scenario(setup: Setup) -> None:
        first = asyncio.create_task(setup.post(chat("one")))
        await asyncio.sleep(0.05)
        second = asyncio.create_task(setup.post(chat("two")))
        await asyncio.sleep(0.05)
        third, _ = await setup.post(chat("three"))
        (served, _), (queued, _) = await first, await second

        assert served.status == 200
        assert third.status == 429
        assert (queued.status, queued.headers["Retry-After"]) == (503, "1")
        assert setup.metric("thrifty_router_queue_seconds_count", tier="small") == 1

    run(
        scenario,
        tiers={"small": slow},
        spec={"admission": {"maxInFlightPerReplica": 1, "queueLimit": 1, "queueTimeout": "150ms"}},
    )


def test_a_queued_request_is_served_when_a_slot_frees() -> None:
    async def scenario(setup: Setup) -> None:
        started = time.monotonic()
        results = await asyncio.gather(setup.post(chat("one")), setup.post(chat("two")))

        assert [response.status for response, _ in results] == [200, 200]
        assert time.monotonic() - started > 0.75  # one after the other, never both at once
        assert setup.metric("thrifty_router_queue_seconds_count", tier="small") == 1

    run(
        scenario,
        tiers={"small": slow},
        spec={"admission": {"maxInFlightPerReplica": 1, "queueTimeout": "5s"}},
    )


def test_a_conversation_stays_on_one_replica_and_only_ready_ones_serve() -> None:
    async def scenario(setup: Setup) -> None:
        ready = setup.router.tiers[0].state.replicas
        history = [{"role": "system", "content": "You are a careful assistant. " * 30}]
        replicas = set()
        for number in range(4):
            history.append({"role": "user", "content": f"question {number} about tides " * 20})
            response, body = await setup.post({"messages": history, "max_tokens": 3})
            replicas.add(response.headers["x-thrifty-replica"])
            history.append(
                {"role": "assistant", "content": json.loads(body)["choices"][0]["message"]["content"]}
            )
            for other in range(3):  # other conversations in between
                await setup.post(chat(f"unrelated conversation {number}-{other} " * 40))

        assert len(replicas) == 1
        assert replicas <= set(ready)
        assert setup.metric("thrifty_router_replica_picks_total", tier="small", reason="prefix") >= 3

    run(scenario, tiers={"small": 3})


def test_models_health_metrics_and_bad_requests() -> None:
    async def scenario(setup: Setup) -> None:
        async with setup.session.get(f"{setup.url}/v1/models") as response:
            models = [item["id"] for item in (await response.json())["data"]]
        async with setup.session.get(f"{setup.url}/health") as response:
            health = await response.json()
        async with setup.session.post(f"{setup.url}/v1/chat/completions", data=b"{nope") as response:
            bad_json = response.status
        bad_body, _ = await setup.post({"messages": "not a list"})
        async with setup.session.get(f"{setup.url}/metrics") as response:
            exposition = await response.text()

        assert models == ["assistant", "small"]
        assert health == {"status": "ok", "discovery": True, "readyReplicas": {"small": 1}}
        assert (bad_json, bad_body.status) == (400, 400)
        assert 'thrifty_router_ready_replicas{tier="small"} 1.0' in exposition
        assert 'thrifty_router_max_in_flight_per_replica{tier="small"} 256.0' in exposition

    run(scenario, tiers={"small": 1})


def test_an_unsure_classifier_sends_the_request_one_tier_up() -> None:
    async def scenario(setup: Setup) -> None:
        response, body = await setup.post(chat("is this hard?"))

        assert json.loads(body)["model"] == "large"
        assert response.headers["x-thrifty-tier"] == "large"
        assert (
            setup.metric(
                "thrifty_router_escalations_total",
                from_tier="small",
                to_tier="large",
                trigger="LowConfidence",
            )
            == 1
        )

    unsure_small = TierClassifier(["small", "large"], [0.2, 0.0], {})  # P(small) = 0.55
    run(
        scenario,
        tiers={"small": 1, "large": 1},
        spec={"selection": {"classifier": {"configMap": {"name": "c"}, "minConfidence": 0.7}}},
        classifier=unsure_small,
    )
