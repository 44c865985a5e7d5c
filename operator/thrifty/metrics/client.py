"""The one place that talks to Prometheus: run a model's window queries, return the window.

    metrics = PrometheusMetrics("http://prometheus.monitoring:9090", scrape_interval_s=15)
    window = metrics.window(ModelSelector("llama-70b", "models"), now=time.time(),
                            span_s=policy.evidence_s, step_s=policy.sample_interval_s,
                            itl_slo_s=policy.itl_p95_slo_s)
    if window.errors: ...   # the policy holds and says why

Failures never raise out of `window`: each failed query is named in `MetricsWindow.errors`, which
makes the policy hold (MetricsAvailable=False) instead of acting on half a picture.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from thrifty.api import InferenceModel
from thrifty.control import MetricsWindow, ScalingPolicy
from thrifty.metrics.queries import (
    ModelSelector,
    WindowQueries,
    generated_tokens_query,
    router_queue_query,
    tier_requests_query,
    window_queries,
)
from thrifty.metrics.window_builder import WindowResults, build_window, number


class PrometheusApi(Protocol):
    """The two calls of prometheus-api-client's PrometheusConnect this module uses."""

    def custom_query(self, query: str, params: dict[str, Any] | None = None) -> Any: ...

    def custom_query_range(
        self,
        query: str,
        start_time: datetime,
        end_time: datetime,
        step: str,
        params: dict[str, Any] | None = None,
    ) -> Any: ...


class PrometheusMetrics:
    """Builds `MetricsWindow`s from Prometheus through prometheus-api-client."""

    def __init__(
        self,
        url: str,
        *,
        scrape_interval_s: float = 15.0,
        timeout_s: float = 10.0,
        api: PrometheusApi | None = None,
    ) -> None:
        """`url` is Prometheus's base address; `api` replaces the client (tests pass a fake)."""
        if api is None:
            from prometheus_api_client import PrometheusConnect
            from urllib3.util.retry import Retry

            # No retries inside a step: the client's default (3, with backoff) turns an unreachable
            # Prometheus into a minute-long step; the loop's next step is the retry, and a step
            # that cannot read holds and says so at once.
            api = PrometheusConnect(url=url, disable_ssl=False, timeout=timeout_s, retry=Retry(total=0))
        self._api = api
        self.url = url
        self.scrape_interval_s = scrape_interval_s

    def _range(
        self, name: str, query: str, start: float, end: float, step_s: float, errors: list[str]
    ) -> Any:
        try:
            return self._api.custom_query_range(
                query,
                start_time=datetime.fromtimestamp(start, UTC),
                end_time=datetime.fromtimestamp(end, UTC),
                step=f"{max(1, round(step_s))}s",
            )
        except Exception as error:  # any transport or API failure becomes a named hold reason
            errors.append(f"{name} from {self.url}: {type(error).__name__}: {error}")
            return []

    def _instant(self, query: str) -> Any:
        try:
            return self._api.custom_query(query)
        except Exception:
            return []

    def tier_shares(self, *, namespace: str, router: str, span_s: float) -> dict[str, float] | None:
        """Each tier's share of the requests one router answered over the span; None when the
        router reported nothing (no traffic yet, or Prometheus unreachable)."""
        try:
            result = self._api.custom_query(
                tier_requests_query(namespace=namespace, router=router, span_s=span_s)
            )
        except Exception:  # the share is informative only: a failed read leaves status as it is
            return None
        counts = {
            str(sample["metric"].get("tier", "")): value
            for sample in result or ()
            if (value := number(sample.get("value", (0, None))[1])) is not None
        }
        total = sum(counts.values())
        if total <= 0:
            return None
        return {tier: count / total for tier, count in counts.items() if tier}

    def window(
        self,
        model: ModelSelector,
        *,
        now: float,
        span_s: float,
        step_s: float,
        itl_slo_s: float | None,
        router_tiers: Sequence[tuple[str, str]] = (),
    ) -> MetricsWindow:
        """The last `span_s` of `model`'s metrics at `step_s` resolution, as of `now` (epoch s);
        `router_tiers` names the (router, tier) pairs that send to the model, whose queues count
        as the model's waiting requests."""
        queries: WindowQueries = window_queries(model, step_s=step_s)
        start = now - span_s
        errors: list[str] = []

        def fetch(name: str) -> Any:
            return self._range(name, getattr(queries, name), start, now, step_s, errors)

        try:
            last_scrape = self._api.custom_query(queries.last_scrape)
        except Exception as error:  # as above: a hold reason, not a crash of the loop
            errors.append(f"last_scrape from {self.url}: {type(error).__name__}: {error}")
            last_scrape = []
        results = WindowResults(
            running=fetch("running"),
            waiting=fetch("waiting"),
            kv_cache_usage=fetch("kv_cache_usage"),
            preemptions=fetch("preemptions"),
            finished_per_s=fetch("finished_per_s"),
            ttft_p95=fetch("ttft_p95"),
            itl_p95=fetch("itl_p95"),
            itl_buckets=fetch("itl_buckets"),
            last_scrape=last_scrape,
            # Cost is reported, not acted on: a failed read leaves it unknown and must not make
            # the policy hold, so its error goes nowhere.
            generated_tokens_per_s=self._range(
                "generated_tokens_per_s", generated_tokens_query(model), start, now, step_s, []
            ),
            # The mix and the mean gap feed the capacity planner; without them the policy plans
            # from the window alone, so their errors make nothing hold either.
            mean_itl=self._range("mean_itl", queries.mean_itl, start, now, step_s, []),
            prompt_buckets=self._instant(queries.prompt_buckets),
            output_buckets=self._instant(queries.output_buckets),
            prefix_hit_rate=self._instant(queries.prefix_hit_rate),
            router_waiting=self._range(
                "router_waiting",
                router_queue_query(namespace=model.namespace, tiers=router_tiers),
                start,
                now,
                step_s,
                errors,
            )
            if router_tiers
            else (),
        )
        return build_window(
            results,
            start=start,
            end=now,
            scrape_interval_s=self.scrape_interval_s,
            itl_slo_s=itl_slo_s,
            errors=errors,
        )


class PrometheusWindows:
    """The live loop's window reader: (model, ready pod names, now) -> that model's window.

    The window spans the policy's evidence horizon at the scrape step; the ITL SLO, when the model
    has one, sets where slow inter-token gaps begin. Ready pod names are accepted for the loop's
    signature; the policy compares their count with the pods that report.
    """

    def __init__(
        self,
        url: str,
        *,
        scrape_interval_s: float = 15.0,
        step_s: float = 15.0,
        span_s: float = ScalingPolicy().evidence_s,
        api: PrometheusApi | None = None,
    ) -> None:
        self.metrics = PrometheusMetrics(url, scrape_interval_s=scrape_interval_s, api=api)
        self.step_s = step_s
        self.span_s = span_s

    def read(
        self,
        model: InferenceModel,
        ready_pods: list[str],
        now: float,
        router_tiers: Sequence[tuple[str, str]] = (),
    ) -> MetricsWindow:
        scaling = model.spec.scaling
        slo = scaling.slo if scaling is not None else None
        return self.metrics.window(
            ModelSelector(served_name=model.served_name, namespace=model.namespace),
            now=now,
            span_s=self.span_s,
            step_s=self.step_s,
            itl_slo_s=slo.itl_p95_seconds if slo is not None else None,
            router_tiers=router_tiers,
        )
