"""The Grafana dashboards: committed JSON current, and every query names a metric that exists."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

import pytest
from prometheus_client.metrics_core import Metric

from support import chart_tool
from thrifty.router.metrics import RouterMetrics
from thrifty.twin.config import engine_config_from_vllm_args
from thrifty.twin.sizing import size_server
from thrifty.twin.vllm_metrics import VllmMetrics

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS_DIR = REPO / "charts" / "thrifty" / "dashboards"


dashboards = chart_tool("chart_dashboards")

_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "info": ("_info",),
}


def series_names(families: Iterable[Metric]) -> set[str]:
    """The names Prometheus stores for these metric families (counters get `_total`, ...)."""
    return {family.name + suffix for family in families for suffix in _SUFFIXES.get(family.type, ("",))}


def vllm_names() -> set[str]:
    config = engine_config_from_vllm_args(
        {"model_tag": "meta-llama/Llama-3.1-8B-Instruct"}, gpu_product="NVIDIA-H100-80GB-HBM3"
    )
    return series_names(VllmMetrics(config, size_server(config)).registry.collect())


def router_names() -> set[str]:
    return series_names(RouterMetrics(lambda: ()).registry.collect())


def known_names() -> dict[str, set[str]]:
    return {
        "vLLM (twin)": vllm_names(),
        "router": router_names(),
        "operator": set(dashboards.OPERATOR_METRICS),
    }


def test_committed_dashboards_are_current() -> None:
    expected = dashboards.dashboard_files()
    committed = {p.name: p.read_text() for p in DASHBOARDS_DIR.glob("*.json")}
    assert committed == expected, "charts/thrifty/dashboards is stale: run tools/chart/generate.py"
    assert sorted(expected) == ["cost.json", "models.json", "operator.json", "router.json"]


@pytest.mark.parametrize("dashboard", dashboards.DASHBOARDS, ids=lambda d: d.name)
def test_every_query_names_metrics_that_exist(dashboard: object) -> None:
    known = set().union(*known_names().values())
    unknown = {
        expr: sorted(dashboards.metric_names(expr) - known)
        for expr in dashboard.queries()
        if dashboards.metric_names(expr) - known
    }
    assert unknown == {}


def test_each_source_of_metrics_is_used() -> None:
    used = set().union(*(dashboards.metric_names(q) for d in dashboards.DASHBOARDS for q in d.queries()))
    for source, names in known_names().items():
        assert used & names, f"no dashboard reads a {source} metric"
    assert set(dashboards.OPERATOR_METRICS) <= used, "every operator metric the contract names is shown"


def test_the_twin_exports_the_vllm_names_the_dashboards_rely_on() -> None:
    names = vllm_names()
    for name in (
        "vllm:num_requests_running",
        "vllm:kv_cache_usage_perc",
        "vllm:num_preemptions_total",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:prefix_cache_hits_total",
    ):
        assert name in names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (tier) (rate(thrifty_router_requests_total{code!~"2.."}[5m]))',
            {"thrifty_router_requests_total"},
        ),
        (
            'histogram_quantile(0.95, sum by (le, pod) (rate(vllm:ttft_bucket{a=~"$x"}[$__rate_interval])))',
            {"vllm:ttft_bucket"},
        ),
        ("a / ignoring (tier) group_left () sum(b)", {"a", "b"}),
        (
            'label_values(vllm:num_requests_running{namespace=~"$namespace"}, thrifty_dev_model)',
            {"vllm:num_requests_running"},
        ),
        ("3600 * max by (namespace, model) (x_total offset 1h)", {"x_total"}),
    ],
)
def test_metric_names_are_read_out_of_promql(expr: str, names: set[str]) -> None:
    assert dashboards.metric_names(expr) == names


def test_dashboards_are_well_formed_grafana_models() -> None:
    uids = set()
    for dashboard in dashboards.DASHBOARDS:
        model = json.loads(dashboards.dashboard_files()[f"{dashboard.name}.json"])
        uids.add(model["uid"])
        ids = [panel["id"] for panel in model["panels"]]
        assert len(ids) == len(set(ids)), dashboard.name
        variables = {v["name"] for v in model["templating"]["list"]}
        assert "datasource" in variables
        for panel in model["panels"]:
            assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
            for target in panel.get("targets", []):
                assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
                used = set(re.findall(r"\$(\w+)", target["expr"]))
                assert used <= variables | {"__rate_interval", "__range"}, (dashboard.name, target["expr"])
    assert len(uids) == len(dashboards.DASHBOARDS)
