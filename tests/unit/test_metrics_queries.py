"""The PromQL the control loop runs: exact strings, per model and per pod."""

from __future__ import annotations

from thrifty.metrics import ModelSelector, WindowQueries, quote, window_queries

LLAMA = ModelSelector(served_name="llama-70b", namespace="models")
MATCH = '{model_name="llama-70b",namespace="models"}'


def test_window_queries_select_the_model_and_group_by_pod() -> None:
    queries = window_queries(LLAMA, step_s=15)

    assert queries == WindowQueries(
        running=f"sum by (pod) (vllm:num_requests_running{MATCH})",
        waiting=f"sum by (pod) (vllm:num_requests_waiting{MATCH})",
        kv_cache_usage=f"max by (pod) (vllm:kv_cache_usage_perc{MATCH})",
        preemptions=f"sum by (pod) (increase(vllm:num_preemptions_total{MATCH}[15s]))",
        finished_per_s=f"sum by (pod) (rate(vllm:request_success_total{MATCH}[60s]))",
        ttft_p95=f"histogram_quantile(0.95, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket{MATCH}[60s])))",
        itl_p95=f"histogram_quantile(0.95, sum by (le) (rate(vllm:inter_token_latency_seconds_bucket{MATCH}[60s])))",
        itl_buckets=f"sum by (le) (rate(vllm:inter_token_latency_seconds_bucket{MATCH}[60s]))",
        last_scrape=f"max by (pod) (timestamp(vllm:num_requests_running{MATCH}))",
        mean_itl=f"sum(rate(vllm:inter_token_latency_seconds_sum{MATCH}[60s])) / "
        f"sum(rate(vllm:inter_token_latency_seconds_count{MATCH}[60s]))",
        prompt_buckets=f"sum by (le) (increase(vllm:request_prompt_tokens_bucket{MATCH}[300s]))",
        output_buckets=f"sum by (le) (increase(vllm:request_generation_tokens_bucket{MATCH}[300s]))",
        prefix_hit_rate=f"sum(increase(vllm:prefix_cache_hits_total{MATCH}[300s])) / "
        f"sum(increase(vllm:prefix_cache_queries_total{MATCH}[300s]))",
    )


def test_preemptions_count_over_one_step_and_rates_over_the_rate_window() -> None:
    queries = window_queries(LLAMA, step_s=2, rate_s=30)

    assert queries.preemptions.endswith("[2s]))")
    assert queries.finished_per_s.endswith("[30s]))")
    assert "[30s]" in queries.ttft_p95


def test_label_values_are_escaped_as_promql_strings() -> None:
    assert quote('odd"name\\x') == '"odd\\"name\\\\x"'
    assert ModelSelector('a"b', "ns").matchers() == '{model_name="a\\"b",namespace="ns"}'
