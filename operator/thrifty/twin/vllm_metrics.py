"""vLLM's Prometheus metrics for one twin, in a registry of its own.

Names, types, help texts, label names and histogram buckets follow vLLM V1's
`PrometheusStatLogger` (vllm/v1/metrics/loggers.py, releases 0.11 and later): labels
`model_name` (the served model name) and `engine` ("0" for a server with one engine core).
Many twins share one process, so each gets its own `CollectorRegistry`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from thrifty.twin.config import EngineConfig
from thrifty.twin.engine import Engine, RequestState, StepOutcome
from thrifty.twin.sizing import ServerSizing

_LABELS = ("model_name", "engine")
_TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
_ITL_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
_REQUEST_LATENCY_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
    40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
_ITERATION_TOKEN_BUCKETS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
_FINISH_REASONS = ("stop", "length", "abort")


def one_two_five_buckets(max_value: int) -> list[float]:
    """1, 2, 5, 10, 20, 50, ... up to `max_value`: vLLM's buckets for token-count histograms."""
    buckets: list[float] = []
    scale = 1
    while True:
        for mantissa in (1, 2, 5):
            value = mantissa * scale
            if value > max_value:
                return buckets
            buckets.append(value)
        scale *= 10


class VllmMetrics:
    """The metrics one vLLM server exposes on /metrics, fed from the twin's step outcomes."""

    def __init__(self, config: EngineConfig, sizing: ServerSizing) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        values = (config.served_model_name, "0")
        registry = self.registry

        def gauge(name: str, documentation: str) -> Gauge:
            return Gauge(name, documentation, _LABELS, registry=registry).labels(*values)

        def counter(name: str, documentation: str) -> Counter:
            return Counter(name, documentation, _LABELS, registry=registry).labels(*values)

        def histogram(name: str, documentation: str, buckets: tuple[float, ...] | list[float]) -> Histogram:
            return Histogram(name, documentation, _LABELS, registry=registry, buckets=buckets).labels(*values)

        self.running = gauge("vllm:num_requests_running", "Number of requests in model execution batches.")
        self.waiting = gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.")
        self.kv_usage = gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.")
        self.prefix_queries = counter(
            "vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens."
        )
        self.prefix_hits = counter(
            "vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens."
        )
        self.preemptions = counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.")
        self.prompt_tokens = counter("vllm:prompt_tokens", "Number of prefill tokens processed.")
        self.generation_tokens = counter("vllm:generation_tokens", "Number of generation tokens processed.")
        success = Counter(
            "vllm:request_success",
            "Count of successfully processed requests.",
            (*_LABELS, "finished_reason"),
            registry=registry,
        )
        self.success = {reason: success.labels(*values, reason) for reason in _FINISH_REASONS}
        token_buckets = one_two_five_buckets(config.max_model_len)
        self.request_prompt_tokens = histogram(
            "vllm:request_prompt_tokens", "Number of prefill tokens processed.", token_buckets
        )
        self.request_generation_tokens = histogram(
            "vllm:request_generation_tokens", "Number of generation tokens processed.", token_buckets
        )
        self.iteration_tokens = histogram(
            "vllm:iteration_tokens_total",
            "Histogram of number of tokens per engine_step.",
            _ITERATION_TOKEN_BUCKETS,
        )
        self.ttft = histogram(
            "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", _TTFT_BUCKETS
        )
        self.itl = histogram(
            "vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", _ITL_BUCKETS
        )
        self.e2e = histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            _REQUEST_LATENCY_BUCKETS,
        )
        self.queue_time = histogram(
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            _REQUEST_LATENCY_BUCKETS,
        )
        self.inference_time = histogram(
            "vllm:request_inference_time_seconds",
            "Histogram of time spent in RUNNING phase for request.",
            _REQUEST_LATENCY_BUCKETS,
        )
        self.prefill_time = histogram(
            "vllm:request_prefill_time_seconds",
            "Histogram of time spent in PREFILL phase for request.",
            _REQUEST_LATENCY_BUCKETS,
        )
        self.decode_time = histogram(
            "vllm:request_decode_time_seconds",
            "Histogram of time spent in DECODE phase for request.",
            _REQUEST_LATENCY_BUCKETS,
        )
        # vLLM publishes its cache configuration as an info-style gauge; the twin gives the fields a
        # capacity planner reads (a subset of vLLM's labels).
        cache_info = Gauge(
            "vllm:cache_config_info",
            "Information of the LLMEngine CacheConfig",
            (
                "block_size",
                "cache_dtype",
                "enable_prefix_caching",
                "gpu_memory_utilization",
                "num_gpu_blocks",
                "engine",
            ),
            registry=registry,
        )
        cache_info.labels(
            str(config.block_size),
            config.kv_cache_dtype,
            str(config.enable_prefix_caching),
            str(config.gpu_memory_utilization),
            str(sizing.num_gpu_blocks),
            "0",
        ).set(1)

    def record_step(self, engine: Engine, outcome: StepOutcome) -> None:
        """Fold one step's outcome and the engine's state after it into the metrics."""
        self.running.set(engine.num_running)
        self.waiting.set(engine.num_waiting)
        self.kv_usage.set(engine.kv_usage)
        if outcome.prefix_queries:
            self.prefix_queries.inc(outcome.prefix_queries)
            self.prefix_hits.inc(outcome.prefix_hits)
        if outcome.num_preempted:
            self.preemptions.inc(outcome.num_preempted)
        if outcome.num_prompt_tokens:
            self.prompt_tokens.inc(outcome.num_prompt_tokens)
        if outcome.num_generation_tokens:
            self.generation_tokens.inc(outcome.num_generation_tokens)
        self.iteration_tokens.observe(outcome.num_scheduled_tokens)
        for request, _count, gap in outcome.emitted:
            if gap is None:
                assert request.first_token_s is not None
                self.ttft.observe(request.first_token_s - request.arrival_s)
            else:
                self.itl.observe(gap)
        for request in outcome.finished:
            self.record_finished(request)

    def record_state(self, engine: Engine) -> None:
        """Refresh the gauges without a step (after an abort, or when the engine goes idle)."""
        self.running.set(engine.num_running)
        self.waiting.set(engine.num_waiting)
        self.kv_usage.set(engine.kv_usage)

    def record_finished(self, request: RequestState) -> None:
        """The per-request histograms and the success counter, once a request has finished."""
        assert request.finish_reason is not None
        assert request.finished_s is not None
        self.success[request.finish_reason].inc()
        self.e2e.observe(request.finished_s - request.arrival_s)
        self.request_prompt_tokens.observe(request.prompt_tokens)
        self.request_generation_tokens.observe(request.output_tokens)
        if request.first_scheduled_s is not None:
            self.queue_time.observe(request.first_scheduled_s - request.arrival_s)
            self.inference_time.observe(request.finished_s - request.first_scheduled_s)
            if request.first_token_s is not None:
                self.prefill_time.observe(request.first_token_s - request.first_scheduled_s)
                self.decode_time.observe(request.finished_s - request.first_token_s)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)
