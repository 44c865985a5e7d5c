"""The token rate behind the cost per token: its PromQL, and how it reaches the window."""

from __future__ import annotations

from typing import Any

from thrifty.metrics import ModelSelector, PrometheusMetrics, WindowResults, build_window
from thrifty.metrics.queries import generated_tokens_query

NOW = 1_800_000_000.0
STEPS = [NOW - 30, NOW - 15, NOW]


def test_the_token_rate_is_model_wide_generated_tokens_per_second() -> None:
    query = generated_tokens_query(ModelSelector("llama-70b", "models"), rate_s=30)

    assert query == 'sum(rate(vllm:generation_tokens_total{model_name="llama-70b",namespace="models"}[30s]))'


def results(tokens: list[dict[str, Any]]) -> WindowResults:
    running = [{"metric": {"pod": "pod-a"}, "values": [[t, "3"] for t in STEPS]}]
    return WindowResults(
        running=running,
        waiting=[],
        kv_cache_usage=[],
        preemptions=[],
        finished_per_s=[],
        ttft_p95=[],
        itl_p95=[],
        itl_buckets=[],
        last_scrape=[{"metric": {"pod": "pod-a"}, "value": [NOW, str(NOW)]}],
        generated_tokens_per_s=tokens,
    )


def test_the_window_carries_the_token_rate_per_step_without_gaps_or_nan() -> None:
    tokens = [{"metric": {}, "values": [[STEPS[0], "NaN"], [STEPS[1], "120.5"], [STEPS[2], "99"]]}]

    window = build_window(results(tokens), start=NOW - 45, end=NOW, scrape_interval_s=15, itl_slo_s=None)

    assert window.generated_tokens_per_s == ((NOW - 15, 120.5), (NOW, 99.0))


class Failing:
    """A Prometheus that answers the engine's gauges but fails the token query."""

    def custom_query(self, query: str, params: dict[str, Any] | None = None) -> Any:
        return [{"metric": {"pod": "pod-a"}, "value": [NOW, str(NOW)]}]

    def custom_query_range(
        self, query: str, start_time: Any, end_time: Any, step: str, params: Any = None
    ) -> Any:
        if "generation_tokens" in query:
            raise ConnectionError("connection refused")
        if "num_requests_running" in query:
            return [{"metric": {"pod": "pod-a"}, "values": [[t, "3"] for t in STEPS]}]
        return []


def test_a_failed_token_query_leaves_cost_unknown_but_never_holds_the_loop() -> None:
    metrics = PrometheusMetrics("http://127.0.0.1:9090", api=Failing())

    window = metrics.window(ModelSelector("llama", "models"), now=NOW, span_s=45, step_s=15, itl_slo_s=None)

    assert window.generated_tokens_per_s == ()
    assert window.errors == ()
    assert len(window.samples) == 3
