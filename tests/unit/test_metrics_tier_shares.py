"""Each tier's share of a router's traffic, read from the router's request counters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from thrifty.metrics.client import PrometheusMetrics
from thrifty.metrics.queries import tier_requests_query


class FakePrometheus:
    def __init__(self, result: Any = None, error: Exception | None = None) -> None:
        self.result, self.error, self.queries = result, error, []  # type: ignore[var-annotated]

    def custom_query(self, query: str, params: dict[str, Any] | None = None) -> Any:
        self.queries.append(query)
        if self.error is not None:
            raise self.error
        return self.result

    def custom_query_range(
        self, query: str, start_time: datetime, end_time: datetime, step: str, params: Any = None
    ) -> Any:
        raise AssertionError("tier shares need no range query")


def test_the_query_sums_each_tier_over_the_routers_pods() -> None:
    query = tier_requests_query(namespace="models", router="assistant", span_s=300)
    assert query == (
        'sum by (tier) (increase(thrifty_router_requests_total{namespace="models",thrifty_dev_router="assistant"}[300s]))'
    )


def test_shares_are_fractions_of_all_answered_requests() -> None:
    fake = FakePrometheus(
        [
            {"metric": {"tier": "small"}, "value": [0, "75"]},
            {"metric": {"tier": "large"}, "value": [0, "25"]},
        ]
    )
    shares = PrometheusMetrics("http://prometheus", api=fake).tier_shares(
        namespace="models", router="assistant", span_s=300
    )
    assert shares == {"small": 0.75, "large": 0.25}
    assert 'thrifty_dev_router="assistant"' in fake.queries[0]


def test_no_traffic_or_no_prometheus_gives_no_shares() -> None:
    metrics = PrometheusMetrics(
        "http://prometheus", api=FakePrometheus([{"metric": {"tier": "small"}, "value": [0, "0"]}])
    )
    assert metrics.tier_shares(namespace="models", router="assistant", span_s=300) is None
    failing = PrometheusMetrics("http://prometheus", api=FakePrometheus(error=ConnectionError("refused")))
    assert failing.tier_shares(namespace="models", router="assistant", span_s=300) is None
