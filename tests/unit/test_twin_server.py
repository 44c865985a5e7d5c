"""The real-time driver end to end on loopback: OpenAI API, SSE streaming, health, vLLM metrics."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from thrifty.twin import EngineConfig, TwinServer, engine_config_from_vllm_args

MODEL = "tiny-llama"


def config(**args: Any) -> EngineConfig:
    # Llama-3.2-1B on an H100 steps in about 2 ms, so a test's requests take tens of milliseconds.
    return engine_config_from_vllm_args(
        {
            "model": "meta-llama/Llama-3.2-1B-Instruct",
            "served_model_name": [MODEL],
            "max_model_len": 4096,
            **args,
        },
        gpu_product="NVIDIA-H100-80GB-HBM3",
    )


def serve(
    test: Callable[[TwinServer, aiohttp.ClientSession], Awaitable[None]],
    *,
    host: str = "127.0.0.1",
    load_seconds: float = 0.0,
) -> None:
    async def main() -> None:
        server = TwinServer(config(), host=host, port=0, load_seconds=load_seconds)
        async with server, aiohttp.ClientSession() as session:
            await asyncio.wait_for(test(server, session), timeout=20)

    asyncio.run(main())


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text; labels must match exactly the ones given."""
    for line in text.splitlines():
        match = re.fullmatch(r"([^{ ]+)(?:\{([^}]*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(match.group(3))
    raise AssertionError(f"no sample {name} {labels} in the metrics")


def sse_events(body: str) -> list[str]:
    return [line.removeprefix("data: ") for line in body.split("\n\n") if line.startswith("data: ")]


def test_health_is_503_until_the_model_has_loaded() -> None:
    async def check(server: TwinServer, session: aiohttp.ClientSession) -> None:
        async with session.get(f"{server.url}/health") as response:
            assert response.status == 503
        async with session.post(f"{server.url}/v1/completions", json={"prompt": "hi"}) as response:
            assert response.status == 503
        await server.wait_ready()
        async with session.get(f"{server.url}/health") as response:
            assert response.status == 200

    serve(check, load_seconds=0.3)


def test_streaming_chat_returns_tokens_then_usage_then_done() -> None:
    async def check(server: TwinServer, session: aiohttp.ClientSession) -> None:
        await server.wait_ready()
        request = {
            "model": MODEL,
            "messages": [{"role": "user", "content": "Tell me about twins. " * 20}],
            "max_tokens": 12,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        async with session.post(f"{server.url}/v1/chat/completions", json=request) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            events = sse_events(await response.text())

        assert events[-1] == "[DONE]"
        chunks = [json.loads(event) for event in events[:-1]]
        assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
        content = "".join(
            chunk["choices"][0]["delta"].get("content", "") for chunk in chunks if chunk["choices"]
        )
        assert len(content) == 12 * 4
        finishes = [chunk["choices"][0]["finish_reason"] for chunk in chunks if chunk["choices"]]
        assert finishes[-1] == "length"
        assert chunks[-1]["usage"]["completion_tokens"] == 12
        assert chunks[-1]["usage"]["prompt_tokens"] > 100
        assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}

    serve(check)


def test_streaming_completion_ends_with_done() -> None:
    async def check(server: TwinServer, session: aiohttp.ClientSession) -> None:
        await server.wait_ready()
        request = {"prompt": "Once upon a time", "max_tokens": 5, "stream": True}
        async with session.post(f"{server.url}/v1/completions", json=request) as response:
            events = sse_events(await response.text())

        assert events[-1] == "[DONE]"
        texts = [json.loads(event)["choices"][0]["text"] for event in events[:-1]]
        assert len("".join(texts)) == 5 * 4

    serve(check)


def test_non_streaming_completion_honours_max_tokens_and_reports_usage() -> None:
    async def check(server: TwinServer, session: aiohttp.ClientSession) -> None:
        await server.wait_ready()
        request = {"model": MODEL, "prompt": "x" * 400, "max_tokens": 7}
        async with session.post(f"{server.url}/v1/completions", json=request) as response:
            body = await response.json()

        assert body["object"] == "text_completion"
        assert body["usage"] == {
            "prompt_tokens": 100,
            "completion_tokens": 7,
            "total_tokens": 107,
            "prompt_tokens_details": None,
        }
        assert body["choices"][0]["finish_reason"] == "length"

    serve(check)


def test_prompt_length_header_and_field_force_the_prompt_tokens() -> None:
    async def check(server: TwinServer, session: aiohttp.ClientSession) -> None:
        await server.wait_ready()
        chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        async with session.post(
            f"{server.url}/v1/chat/completions", json=chat, headers={"X-Twin-Prompt-Tokens": "1500"}
        ) as response:
            assert (await response.json())["usage"]["prompt_tokens"] == 1500
        completion = {"prompt": "hi", "max_tokens": 1, "twin_prompt_tokens": 777}
        async with session.post(f"{server.url}/v1/completions", json=completion) as response:
            assert (await response.json())["usage"]["prompt_tokens"] == 777

    serve(check)


def test_chat_without_max_tokens_stops_naturally() -> None:
    async def check(server: TwinServer, session: aiohttp.ClientSession) -> None:
        await server.wait_ready()
        async with session.post(
            f"{server.url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}
        ) as response:
            body = await response.json()

        assert body["choices"][0]["finish_reason"] == "stop"
        assert body["choices"][0]["message"]["role"] == "assistant"
        assert body["usage"]["completion_tokens"] > 0

    serve(check)


def test_bad_requests_get_vllm_style_errors() -> None:
    async def check(server: TwinServer, session: aiohttp.ClientSession) -> None:
        await server.wait_ready()
        async with session.post(
            f"{server.url}/v1/completions", json={"model": "other", "prompt": "hi"}
        ) as response:
            assert response.status == 404
            assert (await response.json())["error"]["message"] == "The model `other` does not exist."
        too_long = {"prompt": "hi", "twin_prompt_tokens": 4000, "max_tokens": 500}
        async with session.post(f"{server.url}/v1/completions", json=too_long) as response:
            assert response.status == 400
            assert "maximum context length is 4096 tokens" in (await response.json())["error"]["message"]
        async with session.post(f"{server.url}/v1/chat/completions", json={"messages": []}) as response:
            assert response.status == 400
            assert (await response.json())["error"]["param"] == "messages"

    serve(check)


def test_models_lists_the_served_name() -> None:
    async def check(server: TwinServer, session: aiohttp.ClientSession) -> None:
        await server.wait_ready()
        async with session.get(f"{server.url}/v1/models") as response:
            body = await response.json()

        assert [model["id"] for model in body["data"]] == [MODEL]
        assert body["data"][0]["max_model_len"] == 4096
        assert body["data"][0]["root"] == "meta-llama/Llama-3.2-1B-Instruct"

    serve(check)


def test_metrics_use_vllm_names_types_and_labels_and_count_requests() -> None:
    async def check(server: TwinServer, session: aiohttp.ClientSession) -> None:
        await server.wait_ready()
        async with session.get(f"{server.url}/metrics") as response:
            before = await response.text()
        labels = {"model_name": MODEL, "engine": "0"}
        prompt = "same prefix " * 200
        for _ in range(2):
            request = {"prompt": prompt, "max_tokens": 10}
            async with session.post(f"{server.url}/v1/completions", json=request) as response:
                assert response.status == 200
        async with session.get(f"{server.url}/metrics") as response:
            after = await response.text()

        types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", after, re.MULTILINE))
        assert types["vllm:num_requests_running"] == "gauge"
        assert types["vllm:num_requests_waiting"] == "gauge"
        assert types["vllm:kv_cache_usage_perc"] == "gauge"
        assert types["vllm:num_preemptions_total"] == "counter"
        assert types["vllm:time_to_first_token_seconds"] == "histogram"
        assert types["vllm:inter_token_latency_seconds"] == "histogram"
        assert types["vllm:e2e_request_latency_seconds"] == "histogram"
        assert metric(before, "vllm:prompt_tokens_total", **labels) == 0
        assert metric(after, "vllm:prompt_tokens_total", **labels) == 2 * 600
        assert metric(after, "vllm:generation_tokens_total", **labels) == 20
        assert metric(after, "vllm:prefix_cache_queries_total", **labels) == 2 * 600
        assert metric(after, "vllm:prefix_cache_hits_total", **labels) == (600 - 1) // 16 * 16
        assert metric(after, "vllm:num_preemptions_total", **labels) == 0
        assert metric(after, "vllm:time_to_first_token_seconds_count", **labels) == 2
        assert metric(after, "vllm:inter_token_latency_seconds_count", **labels) == 18
        assert metric(after, "vllm:e2e_request_latency_seconds_count", **labels) == 2
        assert metric(after, "vllm:time_to_first_token_seconds_bucket", le="2560.0", **labels) == 2
        assert metric(after, "vllm:request_success_total", finished_reason="length", **labels) == 2
        assert metric(after, "vllm:num_requests_running", **labels) == 0
        assert metric(after, "vllm:kv_cache_usage_perc", **labels) == 0

    serve(check)


def test_running_gauge_counts_in_flight_requests() -> None:
    async def check(server: TwinServer, session: aiohttp.ClientSession) -> None:
        await server.wait_ready()

        async def one() -> None:
            async with session.post(
                f"{server.url}/v1/completions", json={"prompt": "p", "max_tokens": 200}
            ) as response:
                await response.read()

        tasks = [asyncio.create_task(one()) for _ in range(3)]
        await asyncio.sleep(0.1)
        async with session.get(f"{server.url}/metrics") as response:
            during = await response.text()
        await asyncio.gather(*tasks)

        assert metric(during, "vllm:num_requests_running", model_name=MODEL) == 3
        assert metric(during, "vllm:kv_cache_usage_perc", model_name=MODEL) > 0

    serve(check)


def test_client_that_disconnects_mid_stream_aborts_its_request() -> None:
    async def check(server: TwinServer, session: aiohttp.ClientSession) -> None:
        await server.wait_ready()
        request = {"prompt": "p", "max_tokens": 3000, "stream": True}
        async with session.post(f"{server.url}/v1/completions", json=request) as response:
            await response.content.readline()  # the first chunk has arrived
        for _ in range(100):
            if not server.engine.has_work:
                break
            await asyncio.sleep(0.02)

        assert not server.engine.has_work
        assert server.engine.kv_usage == 0
        async with session.get(f"{server.url}/metrics") as response:
            text = await response.text()
        assert metric(text, "vllm:request_success_total", finished_reason="abort") == 1

    serve(check)


def test_servers_in_one_process_have_their_own_addresses_and_metrics() -> None:
    async def main() -> None:
        first = TwinServer(config(), host="127.0.0.2", port=0, load_seconds=0)
        second = TwinServer(config(served_model_name=["other"]), host="127.0.0.3", port=0, load_seconds=0)
        async with first, second, aiohttp.ClientSession() as session:
            await first.wait_ready()
            await second.wait_ready()
            async with session.post(
                f"{first.url}/v1/completions", json={"prompt": "p", "max_tokens": 3}
            ) as response:
                assert response.status == 200
            async with session.get(f"{first.url}/metrics") as response:
                first_metrics = await response.text()
            async with session.get(f"{second.url}/metrics") as response:
                second_metrics = await response.text()

        assert metric(first_metrics, "vllm:generation_tokens_total", model_name=MODEL) == 3
        assert metric(second_metrics, "vllm:generation_tokens_total", model_name="other") == 0

    asyncio.run(main())


def test_a_dead_engine_answers_500_to_requests_and_health_until_it_heals() -> None:
    async def check(server: TwinServer, session: aiohttp.ClientSession) -> None:
        await server.wait_ready()
        server.fault = "CUDA error: an illegal memory access"
        async with session.post(f"{server.url}/v1/completions", json={"prompt": "hi"}) as response:
            assert response.status == 500
            assert "illegal memory access" in (await response.json())["error"]["message"]
        async with session.get(f"{server.url}/health") as response:
            assert response.status == 500
        server.fault = None
        async with session.post(
            f"{server.url}/v1/completions", json={"prompt": "hi", "max_tokens": 2}
        ) as response:
            assert response.status == 200

    serve(check)
