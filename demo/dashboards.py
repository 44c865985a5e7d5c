"""After the tour: does every metric the chart's Grafana dashboards query exist in the testbed's
Prometheus? (A counter a target declares but has not incremented yet, e.g. escalations in a run
without failures, counts as existing: Prometheus knows it from the target's metadata.)"""

from __future__ import annotations

import importlib
import json
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

CHART_TOOLS = Path(__file__).resolve().parents[1] / "tools" / "chart"


def _get(prometheus: str, path: str, **params: str) -> Any:
    url = f"{prometheus}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)["data"]


def dashboard_metric_names() -> set[str]:
    if str(CHART_TOOLS) not in sys.path:
        sys.path.insert(0, str(CHART_TOOLS))
    dashboards = importlib.import_module("chart_dashboards")
    names: set[str] = set()
    for dashboard in dashboards.DASHBOARDS:
        for query in dashboard.queries():
            names |= dashboards.metric_names(query)
    return names


def missing_metrics(prometheus: str) -> tuple[set[str], list[str]]:
    """(every metric name the dashboards query, those Prometheus neither has nor knows of)."""
    wanted = dashboard_metric_names()
    present = set(_get(prometheus, "/api/v1/label/__name__/values"))

    def declared(name: str) -> bool:
        family = (
            name.removesuffix("_total").removesuffix("_bucket").removesuffix("_sum").removesuffix("_count")
        )
        return any(_get(prometheus, "/api/v1/metadata", metric=candidate) for candidate in {name, family})

    return wanted, sorted(name for name in wanted - present if not declared(name))
