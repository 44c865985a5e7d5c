"""The PromQL the control loop runs, as pure functions of a model's identity.

Every vLLM series carries `model_name` (the served name) and, through Prometheus's relabelling,
the target's `namespace` and `pod`. Per-pod queries sum over vLLM's own extra labels (`engine`,
`finished_reason`), so a pod with several engines still counts once.

    queries = window_queries(ModelSelector(served_name="llama-70b", namespace="models"), step_s=15)
    queries.running   # 'sum by (pod) (vllm:num_requests_running{model_name="llama-70b",namespace="models"})'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_CACHE_USAGE = "vllm:kv_cache_usage_perc"
PREEMPTIONS = "vllm:num_preemptions_total"
REQUEST_SUCCESS = "vllm:request_success_total"
TTFT = "vllm:time_to_first_token_seconds"
ITL = "vllm:inter_token_latency_seconds"
GENERATION_TOKENS = "vllm:generation_tokens_total"
REQUEST_PROMPT_TOKENS = "vllm:request_prompt_tokens"
REQUEST_GENERATION_TOKENS = "vllm:request_generation_tokens"
PREFIX_CACHE_HITS = "vllm:prefix_cache_hits_total"
PREFIX_CACHE_QUERIES = "vllm:prefix_cache_queries_total"


def quote(value: str) -> str:
    """`value` as a PromQL double-quoted string literal."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


@dataclass(frozen=True, slots=True)
class ModelSelector:
    """Which vLLM series belong to one InferenceModel."""

    served_name: str
    """The `model_name` label: spec.model.servedName, or the object's name."""
    namespace: str
    """The InferenceModel's namespace (the pods' `namespace` target label)."""

    def matchers(self) -> str:
        return f"{{model_name={quote(self.served_name)},namespace={quote(self.namespace)}}}"


def _duration(seconds: float) -> str:
    return f"{max(1, round(seconds))}s"


@dataclass(frozen=True, slots=True)
class WindowQueries:
    """Every query behind one `MetricsWindow`; range queries unless the name says otherwise."""

    running: str
    waiting: str
    kv_cache_usage: str
    preemptions: str
    """New preemptions per pod over each step (the increase of a counter)."""
    finished_per_s: str
    """Requests finished per second per pod over the last `rate_s`."""
    ttft_p95: str
    """Model-wide time-to-first-token p95 over the last `rate_s`."""
    itl_p95: str
    """Model-wide inter-token-latency p95 over the last `rate_s`."""
    itl_buckets: str
    """Model-wide ITL histogram buckets (rate per `le`): the share of slow gaps is read off them."""
    last_scrape: str
    """Instant query: each pod's newest scrape time, to tell a fresh sample from a held one."""
    mean_itl: str
    """Model-wide mean inter-token gap over the last `rate_s` (the histogram's sum over count)."""
    prompt_buckets: str
    """Instant query: prompt lengths of the requests finished over the last `mix_s`, per `le`."""
    output_buckets: str
    """Instant query: generated tokens of those requests, per `le`."""
    prefix_hit_rate: str
    """Instant query: the share of prompt tokens the prefix cache held over the last `mix_s`."""


def window_queries(
    model: ModelSelector, *, step_s: float, rate_s: float = 60.0, mix_s: float = 300.0
) -> WindowQueries:
    """The queries for `model`'s window, at `step_s` resolution with rates over `rate_s` and the
    request mix over `mix_s`."""
    match = model.matchers()
    rate = _duration(rate_s)
    step = _duration(step_s)
    mix = _duration(mix_s)

    def histogram_p95(metric: str) -> str:
        return f"histogram_quantile(0.95, sum by (le) (rate({metric}_bucket{match}[{rate}])))"

    return WindowQueries(
        running=f"sum by (pod) ({RUNNING}{match})",
        waiting=f"sum by (pod) ({WAITING}{match})",
        kv_cache_usage=f"max by (pod) ({KV_CACHE_USAGE}{match})",
        preemptions=f"sum by (pod) (increase({PREEMPTIONS}{match}[{step}]))",
        finished_per_s=f"sum by (pod) (rate({REQUEST_SUCCESS}{match}[{rate}]))",
        ttft_p95=histogram_p95(TTFT),
        itl_p95=histogram_p95(ITL),
        itl_buckets=f"sum by (le) (rate({ITL}_bucket{match}[{rate}]))",
        last_scrape=f"max by (pod) (timestamp({RUNNING}{match}))",
        mean_itl=f"sum(rate({ITL}_sum{match}[{rate}])) / sum(rate({ITL}_count{match}[{rate}]))",
        prompt_buckets=f"sum by (le) (increase({REQUEST_PROMPT_TOKENS}_bucket{match}[{mix}]))",
        output_buckets=f"sum by (le) (increase({REQUEST_GENERATION_TOKENS}_bucket{match}[{mix}]))",
        prefix_hit_rate=(
            f"sum(increase({PREFIX_CACHE_HITS}{match}[{mix}])) / sum(increase({PREFIX_CACHE_QUERIES}{match}[{mix}]))"
        ),
    )


def generated_tokens_query(model: ModelSelector, *, rate_s: float = 60.0) -> str:
    """Range query: tokens per second the whole model generated over the last `rate_s` (the
    denominator of its cost per token)."""
    return f"sum(rate({GENERATION_TOKENS}{model.matchers()}[{_duration(rate_s)}]))"


ROUTER_REQUESTS = "thrifty_router_requests_total"


def tier_requests_query(*, namespace: str, router: str, span_s: float) -> str:
    """Requests each tier of one router answered over the span (label `tier`), across its pods.
    Router series carry the pod label `thrifty.dev/router` as `thrifty_dev_router`."""
    matchers = f"{{namespace={quote(namespace)},thrifty_dev_router={quote(router)}}}"
    return f"sum by (tier) (increase({ROUTER_REQUESTS}{matchers}[{_duration(span_s)}]))"


ROUTER_QUEUE = "thrifty_router_queue_length"


def router_queue_query(*, namespace: str, tiers: Sequence[tuple[str, str]]) -> str:
    """Requests Thrifty's routers hold back for one model: the queue length of every (router,
    tier) that sends to it, summed over the routers' pods."""
    selectors = [
        f"{ROUTER_QUEUE}{{namespace={quote(namespace)},thrifty_dev_router={quote(router)},tier={quote(tier)}}}"
        for router, tier in tiers
    ]
    return f"sum({' or '.join(selectors)})"
