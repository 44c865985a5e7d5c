"""Prometheus answers -> the policy's window: parsing, slow-gap shares, staleness, failing queries."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from thrifty.api import InferenceModel
from thrifty.control import Action, ScalingPolicy, ScalingState, decide
from thrifty.metrics import (
    ModelSelector,
    PrometheusMetrics,
    PrometheusWindows,
    WindowResults,
    build_window,
    share_above,
)

NOW = 1_800_000_000.0
STEPS = [NOW - 15 * k for k in range(8)][::-1]


def _range(values_by_pod: dict[str, float], *, times: list[float] = STEPS) -> list[dict[str, Any]]:
    return [
        {"metric": {"pod": pod}, "values": [[t, str(value)] for t in times]}
        for pod, value in values_by_pod.items()
    ]


def _model_wide(value: str) -> list[dict[str, Any]]:
    return [{"metric": {}, "values": [[t, value] for t in STEPS]}]


def _buckets(counts: dict[str, float]) -> list[dict[str, Any]]:
    return [
        {"metric": {"le": le}, "values": [[t, str(count)] for t in STEPS]} for le, count in counts.items()
    ]


def _results(**overrides: Any) -> WindowResults:
    pods = {"pod-a": 0.0, "pod-b": 0.0}
    fields: dict[str, Any] = {
        "running": _range({"pod-a": 20, "pod-b": 30}),
        "waiting": _range({"pod-a": 1, "pod-b": 0}),
        "kv_cache_usage": _range({"pod-a": 0.3, "pod-b": 0.4}),
        "preemptions": _range(pods),
        "finished_per_s": _range({"pod-a": 4, "pod-b": 5}),
        "ttft_p95": _model_wide("0.4"),
        "itl_p95": _model_wide("0.031"),
        "itl_buckets": _buckets({"0.025": 80, "0.05": 96, "0.075": 99, "+Inf": 100}),
        "last_scrape": [{"metric": {"pod": pod}, "value": [NOW, str(NOW - 3)]} for pod in pods],
    }
    fields.update(overrides)
    return WindowResults(**fields)


def test_build_window_reads_every_pod_and_the_model_wide_latency() -> None:
    window = build_window(_results(), start=NOW - 105, end=NOW, scrape_interval_s=15, itl_slo_s=0.05)

    latest = window.latest_by_pod()
    assert set(latest) == {"pod-a", "pod-b"}
    assert (latest["pod-a"].running, latest["pod-a"].waiting, latest["pod-a"].kv_cache_usage) == (20, 1, 0.3)
    assert latest["pod-b"].finished_per_s == 5
    newest = window.latency[-1]
    assert (newest.ttft_p95_s, newest.itl_p95_s) == (0.4, 0.031)
    assert newest.itl_slow_share == pytest.approx(0.04)
    assert len(window.samples) == 2 * len(STEPS)


def test_share_above_interpolates_inside_the_bucket_that_holds_the_slo() -> None:
    buckets = {0.025: 80.0, 0.05: 96.0, 0.075: 99.0, math.inf: 100.0}

    assert share_above(buckets, 0.05) == pytest.approx(0.04)
    assert share_above(buckets, 0.0375) == pytest.approx(0.12)
    assert share_above(buckets, 1.0) == pytest.approx(0.01)
    assert share_above({0.05: 0.0, math.inf: 0.0}, 0.05) is None


def test_histogram_nan_becomes_no_latency_rather_than_a_number() -> None:
    window = build_window(
        _results(ttft_p95=_model_wide("NaN"), itl_p95=_model_wide("NaN"), itl_buckets=[]),
        start=NOW - 105,
        end=NOW,
        scrape_interval_s=15,
        itl_slo_s=0.05,
    )

    assert window.latency == ()


def test_a_pod_that_stopped_being_scraped_goes_silent_and_the_policy_holds() -> None:
    # Prometheus keeps filling range steps from pod-b's last sample; its newest scrape is old.
    last_scrape = [
        {"metric": {"pod": "pod-a"}, "value": [NOW, str(NOW - 2)]},
        {"metric": {"pod": "pod-b"}, "value": [NOW, str(NOW - 100)]},
    ]
    window = build_window(
        _results(last_scrape=last_scrape), start=NOW - 105, end=NOW, scrape_interval_s=15, itl_slo_s=0.05
    )
    state = ScalingState(replicas=2, ready_replicas=2, engine_max_num_seqs=256, effective_cap=64)

    decision = decide(window, state, ScalingPolicy(itl_p95_slo_s=0.05, ttft_p95_slo_s=2.0), NOW)

    assert max(s.time for s in window.samples if s.pod == "pod-b") <= NOW - 100 + 15
    assert decision.action is Action.HOLD
    assert "fresh metrics from 1 of 2 ready replicas (silent: pod-b)" in decision.reason


class FakePrometheus:
    """Answers like prometheus-api-client's PrometheusConnect, from canned results; a query that
    contains `failing` raises as a refused connection would."""

    def __init__(self, results: WindowResults, *, failing: str | None = None) -> None:
        self.results = results
        self.failing = failing
        self.calls: list[tuple[str, datetime | None, datetime | None, str | None]] = []

    def _answer(self, query: str) -> Any:
        if self.failing is not None and self.failing in query:
            raise ConnectionError("connection refused")
        if "histogram_quantile" in query:
            return self.results.ttft_p95 if "time_to_first_token" in query else self.results.itl_p95
        if "inter_token_latency_seconds_bucket" in query:
            return self.results.itl_buckets
        if "inter_token_latency_seconds_sum" in query:
            return self.results.mean_itl
        table = {
            "vllm:num_requests_running": self.results.running,
            "vllm:num_requests_waiting": self.results.waiting,
            "vllm:kv_cache_usage_perc": self.results.kv_cache_usage,
            "vllm:num_preemptions_total": self.results.preemptions,
            "vllm:request_success_total": self.results.finished_per_s,
            "thrifty_router_queue_length": self.results.router_waiting,
        }
        return next(value for metric, value in table.items() if metric in query)

    def custom_query(self, query: str, params: dict[str, Any] | None = None) -> Any:
        self.calls.append((query, None, None, None))
        if self.failing is not None and self.failing in query:
            raise ConnectionError("connection refused")
        if "request_prompt_tokens_bucket" in query:
            return self.results.prompt_buckets
        if "request_generation_tokens_bucket" in query:
            return self.results.output_buckets
        if "prefix_cache_hits" in query:
            return self.results.prefix_hit_rate
        return self.results.last_scrape

    def custom_query_range(
        self,
        query: str,
        start_time: datetime,
        end_time: datetime,
        step: str,
        params: dict[str, Any] | None = None,
    ) -> Any:
        self.calls.append((query, start_time, end_time, step))
        return self._answer(query)


def test_client_queries_the_span_at_the_step_and_builds_the_window() -> None:
    fake = FakePrometheus(_results())
    client = PrometheusMetrics("http://127.0.0.1:9090", scrape_interval_s=15, api=fake)

    window = client.window(ModelSelector("llama", "models"), now=NOW, span_s=105, step_s=15, itl_slo_s=0.05)

    ranges = [call for call in fake.calls if call[1] is not None]
    assert len(ranges) == 10
    assert all(call[3] == "15s" and call[2] is not None and call[2].timestamp() == NOW for call in ranges)
    assert all(call[1] is not None and call[1].timestamp() == NOW - 105 for call in ranges)
    assert all('model_name="llama",namespace="models"' in call[0] for call in fake.calls)
    assert window.errors == ()
    assert {s.pod for s in window.samples} == {"pod-a", "pod-b"}


def test_client_turns_a_failing_query_into_a_named_hold_reason() -> None:
    fake = FakePrometheus(_results(), failing="histogram_quantile(0.95, sum by (le) (rate(vllm:inter_token")
    client = PrometheusMetrics("http://127.0.0.1:9090", api=fake)

    window = client.window(ModelSelector("llama", "models"), now=NOW, span_s=105, step_s=15, itl_slo_s=0.05)
    state = ScalingState(replicas=2, ready_replicas=2, engine_max_num_seqs=256, effective_cap=64)
    decision = decide(window, state, ScalingPolicy(itl_p95_slo_s=0.05), NOW)

    assert window.errors == ("itl_p95 from http://127.0.0.1:9090: ConnectionError: connection refused",)
    assert decision.action is Action.HOLD
    assert "metrics query failed: itl_p95" in decision.reason


def test_the_live_loop_reader_selects_the_served_name_and_uses_the_itl_slo() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "llama-3.1-8b-fp8-h100.yaml"
    model = InferenceModel.model_validate(yaml.safe_load(example.read_text()))
    # The example's ITL SLO is 40ms: between the 25ms and 50ms buckets, 86 of 100 gaps fall below.
    fake = FakePrometheus(_results())
    reader = PrometheusWindows("http://127.0.0.1:9090", step_s=15, span_s=105, api=fake)

    window = reader.read(model, ["pod-a", "pod-b"], NOW)

    assert all('model_name="llama-3.1-8b",namespace="models"' in call[0] for call in fake.calls)
    assert window.latency[-1].itl_slow_share == pytest.approx(1 - (80 + 16 * 15 / 25) / 100)


def test_the_routers_queue_for_the_model_is_read_into_the_window() -> None:
    """Requests a router holds back because every replica is at its cap never reach vLLM's own
    waiting queue: the window counts them from the router's metrics, per (router, tier)."""
    fake = FakePrometheus(_results(router_waiting=_model_wide("12")))
    client = PrometheusMetrics("http://127.0.0.1:9090", scrape_interval_s=15, api=fake)

    window = client.window(
        ModelSelector("llama", "models"),
        now=NOW,
        span_s=105,
        step_s=15,
        itl_slo_s=None,
        router_tiers=[("assistant", "small"), ("batch", "cheap")],
    )

    (query,) = [call[0] for call in fake.calls if "thrifty_router_queue_length" in call[0]]
    assert query == (
        'sum(thrifty_router_queue_length{namespace="models",thrifty_dev_router="assistant",tier="small"}'
        ' or thrifty_router_queue_length{namespace="models",thrifty_dev_router="batch",tier="cheap"})'
    )
    assert window.router_waiting[-1][1] == 12.0
    assert (
        client.window(
            ModelSelector("llama", "models"), now=NOW, span_s=105, step_s=15, itl_slo_s=None
        ).router_waiting
        == ()
    )


def _instant_buckets(counts: dict[str, float]) -> list[dict[str, Any]]:
    return [{"metric": {"le": le}, "value": [NOW, str(count)]} for le, count in counts.items()]


def test_the_request_mix_and_the_mean_gap_are_read_into_the_window() -> None:
    """vLLM's token histograms (increase over the mix span) and prefix-cache counters become the
    window's request mix; the ITL histogram's sum over count its mean gap."""
    results = _results(
        prompt_buckets=_instant_buckets({"500": 100, "1000": 300, "2000": 400, "+Inf": 400}),
        output_buckets=_instant_buckets({"100": 100, "200": 300, "500": 400, "+Inf": 400}),
        prefix_hit_rate=[{"metric": {}, "value": [NOW, "0.25"]}],
        mean_itl=_model_wide("0.012"),
    )
    fake = FakePrometheus(results)
    client = PrometheusMetrics("http://127.0.0.1:9090", api=fake)

    window = client.window(ModelSelector("llama", "models"), now=NOW, span_s=105, step_s=15, itl_slo_s=0.05)

    assert window.mix is not None
    assert 800 < window.mix.mean_prompt < 1100
    assert 150 < window.mix.mean_output < 250
    assert window.mix.prefix_hit_rate == 0.25
    assert window.latency[-1].mean_itl_s == 0.012
    assert window.errors == ()


def test_too_few_finished_requests_or_a_failing_mix_query_leave_the_mix_unknown_without_a_hold() -> None:
    few = _results(
        prompt_buckets=_instant_buckets({"500": 3, "+Inf": 5}),
        output_buckets=_instant_buckets({"100": 5, "+Inf": 5}),
    )
    assert build_window(few, start=NOW - 105, end=NOW, scrape_interval_s=15, itl_slo_s=0.05).mix is None

    fake = FakePrometheus(_results(), failing="request_prompt_tokens")
    window = PrometheusMetrics("http://127.0.0.1:9090", api=fake).window(
        ModelSelector("llama", "models"), now=NOW, span_s=105, step_s=15, itl_slo_s=0.05
    )
    assert window.mix is None
    assert window.errors == ()
