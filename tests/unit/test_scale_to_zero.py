"""Scale to zero: the loop gives up the last replica only after the idle delay, a router's wake
brings one back (once per request that waits, never before the last scale to zero), and sparse
traffic does not flap the model between zero and one."""

from __future__ import annotations

import asyncio
import datetime
import json
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError
from test_control_windows import NOW, POLICY, state, window
from test_router_http import chat, listen, twin

from thrifty.api import WAKE_ANNOTATION, InferenceModel, ScalingSpec
from thrifty.control import Action, decide
from thrifty.control.idle import last_busy
from thrifty.reconcile.plan import Observed, desired_scale, plan_model, wake_request
from thrifty.router.app import Router, build_app
from thrifty.router.config import parse_config
from thrifty.router.wake import WakeRequester, wake_patch

IDLE = 600.0
TO_ZERO = replace(POLICY, min_replicas=0, idle_delay_s=IDLE)


def idle_window(now: float = NOW) -> Any:
    return window(pods=1, running=0, finished_per_s=0.0, ttft_s=None, itl_s=None, slow_share=None, now=now)


# ---- the API ----


def test_min_zero_validates_with_an_idle_delay_and_below_zero_does_not() -> None:
    spec = ScalingSpec.model_validate({"replicas": {"min": 0, "max": 4, "idleDelay": "20m"}})
    assert spec.replicas.idle_delay_seconds == 1200
    assert ScalingSpec.model_validate({"replicas": {"min": 0, "max": 4}}).replicas.idle_delay_seconds == 900
    with pytest.raises(ValidationError, match="min"):
        ScalingSpec.model_validate({"replicas": {"min": -1, "max": 4}})
    with pytest.raises(ValidationError, match="idleDelay"):
        ScalingSpec.model_validate({"replicas": {"min": 0, "max": 4, "idleDelay": "soon"}})


# ---- the loop ----


def test_an_idle_model_goes_to_zero_only_after_the_idle_delay() -> None:
    early = decide(idle_window(), replace(state(replicas=1), last_request=NOW - IDLE + 60), TO_ZERO, NOW)
    assert early.replicas == 1
    late = decide(idle_window(), replace(state(replicas=1), last_request=NOW - IDLE - 1), TO_ZERO, NOW)
    assert late.replicas == 0
    assert late.action is Action.SCALE_DOWN
    assert "no request for 601s" in late.reason


def test_the_planners_never_go_below_one_replica_on_their_own() -> None:
    # No demand at all, but the idle clock only just started: one replica stays.
    decision = decide(idle_window(), state(replicas=3), TO_ZERO, NOW)
    assert decision.replicas >= 1
    assert decision.last_request == NOW


def test_a_model_with_min_one_never_goes_to_zero() -> None:
    decision = decide(idle_window(), replace(state(replicas=1), last_request=NOW - 10 * IDLE), POLICY, NOW)
    assert decision.replicas == 1


def test_nothing_goes_while_a_replica_starts_or_a_request_runs() -> None:
    stale_clock = NOW - 10 * IDLE
    starting = decide(
        idle_window(), replace(state(replicas=2, ready=1), last_request=stale_clock), TO_ZERO, NOW
    )
    assert starting.replicas >= 1
    busy = window(pods=1, running=1, finished_per_s=0.0)
    assert decide(busy, replace(state(replicas=1), last_request=stale_clock), TO_ZERO, NOW).replicas >= 1


def test_the_idle_clock_follows_the_newest_sign_of_traffic() -> None:
    assert last_busy(idle_window(), previous=NOW - 50, now=NOW) == NOW - 50
    assert last_busy(idle_window(), previous=None, now=NOW) == NOW
    finished = window(pods=1, running=0, finished_per_s=0.2)
    assert last_busy(finished, previous=NOW - 5000, now=NOW) == NOW
    held = replace(idle_window(), router_waiting=((NOW - 30, 2.0),))
    assert last_busy(held, previous=NOW - 5000, now=NOW) == NOW - 30


def test_at_zero_the_loop_waits_for_the_router_and_does_not_call_metrics_missing() -> None:
    decision = decide(idle_window(), replace(state(replicas=0), last_request=NOW - 99), TO_ZERO, NOW)
    assert decision.replicas == 0
    assert decision.action is Action.STEADY
    assert decision.metrics_available
    assert "router wakes" in decision.reason


def test_one_request_every_few_minutes_keeps_one_replica_without_flapping() -> None:
    """A request every 4 minutes against a 10-minute idle delay: the loop never leaves one replica."""
    last: float | None = None
    replicas = 1
    for step in range(240):  # an hour at 15 s
        now = NOW + 15.0 * step
        busy = step % 16 == 0
        seen = (
            window(pods=1, running=1 if busy else 0, finished_per_s=0.0, now=now)
            if busy
            else idle_window(now)
        )
        decision = decide(seen, replace(state(replicas=replicas), last_request=last), TO_ZERO, now)
        replicas, last = decision.replicas, decision.last_request
        assert replicas == 1, f"went to {replicas} at step {step}"


# ---- the wake, in the model's plan ----


MODEL: dict[str, Any] = {
    "apiVersion": "thrifty.dev/v1alpha1",
    "kind": "InferenceModel",
    "metadata": {"name": "chat", "namespace": "models", "generation": 1},
    "spec": {
        "model": {"source": "hf://meta-llama/Llama-3.1-8B-Instruct"},
        "resources": {"gpu": {"product": "NVIDIA-H100-80GB-HBM3"}},
        "scaling": {"replicas": {"min": 0, "max": 4, "idleDelay": "10m"}},
    },
}
ZEROED = "2026-12-06T10:00:00Z"
NOW_DT = datetime.datetime(2026, 12, 6, 10, 30, tzinfo=datetime.UTC)


def at_zero(wake: str | None) -> dict[str, Any]:
    body = {
        **MODEL,
        "metadata": {**MODEL["metadata"], "annotations": {WAKE_ANNOTATION: wake} if wake else {}},
        "status": {
            "desired": {"replicas": 0, "engineMaxNumSeqs": 256},
            "decisions": [{"time": ZEROED, "action": "ScaleDown", "from": 1, "to": 0, "reason": "idle"}],
        },
    }
    return body


def deployment(replicas: int) -> dict[str, Any]:
    return {
        "metadata": {"name": "chat", "generation": 1},
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"args": ["--max-num-seqs", "256"]}]}},
        },
        "status": {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas},
    }


def test_a_wake_newer_than_the_scale_to_zero_runs_one_replica_and_says_so() -> None:
    body = at_zero("2026-12-06T10:29:00.123Z")
    plan = plan_model(body, Observed(deployment(0), ("NVIDIA-H100-80GB-HBM3",), NOW_DT))
    assert plan.problem is None
    (deployment_child,) = [c for c in plan.children if c["kind"] == "Deployment"]
    assert deployment_child["spec"]["replicas"] == 1
    assert plan.status["desired"]["replicas"] == 1
    newest = plan.status["decisions"][0]
    assert (newest["action"], newest["from"], newest["to"]) == ("ScaleUp", 0, 1)
    assert WAKE_ANNOTATION in newest["reason"]
    assert plan.status["lastRequestTime"] == "2026-12-06T10:29:00Z"


def test_a_wake_older_than_the_scale_to_zero_is_spent() -> None:
    body = at_zero("2026-12-06T09:59:00Z")
    assert wake_request(body, None) is None
    plan = plan_model(body, Observed(deployment(0), ("NVIDIA-H100-80GB-HBM3",), NOW_DT))
    assert plan.status["desired"]["replicas"] == 0


def test_a_model_at_zero_without_a_wake_stays_there_and_a_bad_stamp_is_ignored() -> None:
    for wake in (None, "not a time"):
        plan = plan_model(at_zero(wake), Observed(deployment(0), ("NVIDIA-H100-80GB-HBM3",), NOW_DT))
        assert plan.status["desired"]["replicas"] == 0


def test_a_running_model_is_not_woken_again() -> None:
    body = at_zero("2026-12-06T10:29:00Z")
    body["status"]["desired"]["replicas"] = 2
    desired, woken = desired_scale(InferenceModel.model_validate(body), body, deployment(2), None)
    assert (desired.replicas, woken) == (2, None)


# ---- the router's side ----


def test_the_wake_patch_sets_only_the_annotation() -> None:
    patch = wake_patch(datetime.datetime(2026, 12, 6, 10, 0, 1, 500000, tzinfo=datetime.UTC))
    assert patch == {"metadata": {"annotations": {WAKE_ANNOTATION: "2026-12-06T10:00:01.500Z"}}}


def test_the_waker_asks_once_per_interval_and_again_after_a_failure() -> None:
    sent: list[str] = []
    failing = {"on": True}
    clock = {"now": 0.0}

    def patch(model: str, body: dict[str, object]) -> None:
        if failing["on"]:
            raise RuntimeError("403 forbidden")
        sent.append(model)

    async def scenario() -> None:
        waker = WakeRequester(patch, interval_s=10.0, clock=lambda: clock["now"])
        assert waker.request("chat")
        await asyncio.sleep(0.05)
        failing["on"] = False
        assert waker.request("chat")  # the failure did not count as asked
        await asyncio.sleep(0.05)
        assert not waker.request("chat")
        clock["now"] = 11.0
        assert waker.request("chat")
        await asyncio.sleep(0.05)
        assert waker.sent == 2

    asyncio.run(scenario())
    assert sent == ["chat", "chat"]


def _router_at_zero(waker: WakeRequester, cold_start: str = "10s") -> Router:
    config = parse_config(
        json.dumps(
            {
                "name": "assistant",
                "namespace": "test",
                "spec": {
                    "tiers": [{"name": "small", "model": "small"}],
                    "admission": {"queueTimeout": "1s", "coldStartTimeout": cold_start},
                },
                "models": {"small": {"service": "small", "servedName": "small", "wakeModel": "small-model"}},
            }
        )
    )
    router = Router(config, None, waker)
    router.apply_endpoints({"small": ()})
    return router


def test_a_request_for_a_model_at_zero_waits_through_the_cold_start_and_is_answered() -> None:
    asked: list[str] = []

    async def scenario() -> None:
        waker = WakeRequester(lambda model, body: asked.append(model))
        router = _router_at_zero(waker)
        runner, port = await listen(build_app(router))
        server = twin("small")
        try:
            async with aiohttp.ClientSession() as session:
                pending = asyncio.ensure_future(
                    session.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=chat("hello"))
                )
                await asyncio.sleep(0.3)  # the request is held; the model is asked to wake
                assert asked == ["small-model"]
                assert not pending.done()
                await server.start()  # the cold start ends: discovery reports the replica
                router.apply_endpoints({"small": (f"127.0.0.1:{server.port}",)})
                response = await asyncio.wait_for(pending, 10)
                assert response.status == 200
                assert (await response.json())["choices"]
                response.release()
        finally:
            await server.stop()
            await runner.cleanup()

    asyncio.run(scenario())


def test_a_cold_start_that_outlasts_its_timeout_is_answered_503_with_retry_after() -> None:
    async def scenario() -> None:
        router = _router_at_zero(WakeRequester(lambda model, body: None), cold_start="500ms")
        runner, port = await listen(build_app(router))
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=chat("hi")) as response,
            ):
                assert response.status == 503
                assert response.headers["Retry-After"] == "1"
                assert "no replica started within 500ms" in (await response.text())
        finally:
            await runner.cleanup()

    asyncio.run(scenario())


def test_without_a_waker_a_tier_at_zero_answers_503_at_once() -> None:
    router = _router_at_zero(WakeRequester(lambda model, body: None))
    router.waker = None

    async def scenario() -> None:
        runner, port = await listen(build_app(router))
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=chat("hi")) as response,
            ):
                assert response.status == 503
                assert "no ready replica of small" in (await response.text())
        finally:
            await runner.cleanup()

    asyncio.run(scenario())
