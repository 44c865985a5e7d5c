"""End to end: the dashboards read series that exist, and cost is reported, on the testbed.

An operator with the control loop and its metrics endpoint on the port the testbed's Prometheus
scrapes (`thrifty.testbed.prometheus.OPERATOR_METRICS_PORT`); a model with scaling and a GPU
price behind an InferenceRouter; real traffic through the router to the model's twins. Then the
live Prometheus is asked for every metric name any dashboard query reads, every panel query and
dashboard variable is run, and status.cost and the cost series are checked against the twins'
own token counter.

A counter of events that did not happen in the run (an escalation, a fail-open) has no series
yet; it passes when the scraped router declares it (HELP/TYPE, Prometheus's metadata API), which
still proves the name is right. Every other name must have live series.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import OperatorProcess, fast_loop_env, start_operator, stop_operator
from support import chart_tool, condition, eventually, kubectl, scratch_namespace
from thrifty.testbed.cluster import Testbed
from thrifty.testbed.prometheus import OPERATOR_METRICS_PORT

REPO = Path(__file__).resolve().parents[2]
ROUTER_CLUSTER_ROLE = REPO / "manifests" / "install" / "clusterrole-thrifty-router.yaml"
LIVENESS_PORT = 18083
GPU_HOURLY_USD = 2.5

MODEL = f"""
apiVersion: thrifty.dev/v1alpha1
kind: InferenceModel
metadata: {{name: chat}}
spec:
  model: {{source: hf://meta-llama/Llama-3.1-8B-Instruct, servedName: chat, maxModelLen: 4096}}
  batching: {{maxNumSeqs: 16, maxNumBatchedTokens: 4096}}
  resources: {{gpu: {{product: NVIDIA-H100-80GB-HBM3, count: 1}}}}
  scaling:
    replicas: {{min: 1, max: 2}}
    slo: {{ttftP95: 2s, itlP95: 50ms}}
  cost: {{gpuHourlyUSD: {GPU_HOURLY_USD}}}
"""

ROUTER = """
apiVersion: thrifty.dev/v1alpha1
kind: InferenceRouter
metadata: {name: front}
spec:
  tiers:
    - {name: small, model: chat, costWeight: 1}
"""

# What Grafana puts in for its own variables when the panels are run here.
GRAFANA_VARIABLES = {"$__rate_interval": "30s", "$__range": "5m", "$model": ".*", "$router": ".*"}
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


def start_operator_with_metrics(testbed: Testbed, log: Path, namespace: str) -> OperatorProcess:
    """`thrifty operator` for `namespace`, with the control loop and its metrics where the
    testbed's Prometheus scrapes them. Policy durations run 20x faster, so the window the price
    per token is reckoned over spans 90 s instead of 30 min."""
    env = fast_loop_env(testbed, period_s=2, time_scale=0.05)
    return start_operator(
        testbed,
        log,
        namespaces=namespace,
        port=LIVENESS_PORT,
        extra_env=env,
        metrics_port=OPERATOR_METRICS_PORT,
    )


class Prometheus:
    """The testbed's Prometheus, through its HTTP API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", (path, params, body)
        return body["data"]

    def names(self) -> set[str]:
        return set(self.get("/api/v1/label/__name__/values"))

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/query", query=expr)["result"])

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def label_values(self, selector: str, label: str) -> set[str]:
        return set(self.get(f"/api/v1/label/{label}/values", **{"match[]": selector}))

    def declared_counter(self, name: str) -> bool:
        """Whether a scraped target declares `name` as a counter (with or without samples)."""
        metadata = self.get("/api/v1/metadata", metric=name)
        return any(entry.get("type") == "counter" for entry in metadata.get(name, []))


class Traffic:
    """`workers` closed-loop chat completions through the router until stopped."""

    def __init__(self, address: Callable[[], str], *, workers: int) -> None:
        self.address = address
        self.stop = threading.Event()
        self.completed = 0
        self.threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(workers)]

    def _worker(self) -> None:
        messages = [{"role": "user", "content": "Name three rivers of Europe."}]
        body = json.dumps({"model": "front", "messages": messages, "max_tokens": 64}).encode()
        while not self.stop.is_set():
            request = urllib.request.Request(
                f"http://{self.address()}/v1/chat/completions",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    response.read()
                    self.completed += response.status == 200
            except OSError:
                time.sleep(0.2)

    def __enter__(self) -> Traffic:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=70)


@pytest.fixture
def namespace(core: Any) -> Iterator[str]:
    with scratch_namespace(core, "dash") as name:
        yield name


def read(testbed: Testbed, kind: str, name: str, namespace: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(kubectl(testbed, "get", kind, name, "-n", namespace, "-o", "json"))
    return body


def model_cost(testbed: Testbed, namespace: str) -> dict[str, Any]:
    cost: dict[str, Any] = (read(testbed, "im", "chat", namespace).get("status") or {}).get("cost") or {}
    return cost


def is_ready(body: dict[str, Any]) -> bool:
    found = condition(body, "Ready")
    return found is not None and found["status"] == "True"


def router_address(core: Any, namespace: str) -> str | None:
    pods = core.list_namespaced_pod(namespace, label_selector="thrifty.dev/router=front").items
    return next((f"{p.status.pod_ip}:8000" for p in pods if p.status.pod_ip), None)


def with_variables(expr: str, namespace: str) -> str:
    """A panel's PromQL as Grafana would send it for this namespace and every model and router."""
    expr = expr.replace("$namespace", namespace)
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, expr
    return expr


@pytest.mark.timeout(420)
def test_every_dashboard_query_reads_live_series_and_cost_is_reported(
    testbed: Testbed, thrifty_crds: None, core: Any, namespace: str, tmp_path: Path
) -> None:
    dashboards = chart_tool("chart_dashboards")
    prometheus = Prometheus(testbed.network.prometheus_url)
    kubectl(testbed, "apply", "--server-side", "-f", str(ROUTER_CLUSTER_ROLE))
    operator = start_operator_with_metrics(testbed, tmp_path / "operator.log", namespace)
    try:
        for manifest in (MODEL, ROUTER):
            body = yaml.safe_load(manifest)
            body["metadata"]["namespace"] = namespace
            kubectl(testbed, "apply", "-f", "-", stdin=yaml.safe_dump(body))
        eventually(lambda: is_ready(read(testbed, "im", "chat", namespace)), timeout=90, what="model Ready")
        eventually(lambda: is_ready(read(testbed, "ir", "front", namespace)), timeout=90, what="router Ready")
        address = eventually(lambda: router_address(core, namespace), what="the router pod's address")
        first_hours = model_cost(testbed, namespace)["gpuHours"]

        with Traffic(lambda: address, workers=4) as traffic:
            # Status gets the GPU-hours along with the writes the control loop makes under load.
            eventually(
                lambda: model_cost(testbed, namespace)["gpuHours"] > first_hours,
                timeout=90,
                interval=1,
                what="status.cost.gpuHours to grow while the model runs",
            )
            own = f'{{namespace="{namespace}",model="chat"}}'
            eventually(
                lambda: (prometheus.value(f"thrifty_model_gpu_hours_total{own}") or 0) > 0,
                timeout=60,
                interval=1,
                what="thrifty_model_gpu_hours_total > 0 in Prometheus",
            )

            # The price per token against the same figure from the twins' own series, over the
            # operator's window (90 s): $2.50 x the 1-GPU replicas that reported / generated tokens.
            # Counting prompt tokens too, or another GPU count, would put it well off.
            def expected_usd() -> float | None:
                model = f'{{namespace="{namespace}"}}'
                tokens_per_s = prometheus.value(
                    f"avg_over_time(sum(rate(vllm:generation_tokens_total{model}[1m]))[90s:2s])"
                )
                replicas = prometheus.value(f"avg_over_time(count(vllm:num_requests_running{model})[90s:2s])")
                if not tokens_per_s or not replicas:
                    return None  # the twins' token rate needs two scrapes of traffic
                return GPU_HOURLY_USD * replicas / 3600 / tokens_per_s * 1e6

            def near_expected() -> bool:
                usd = model_cost(testbed, namespace).get("usdPer1MTokens")
                gauge = prometheus.value(f"thrifty_model_usd_per_million_tokens{own}")
                expected = expected_usd()
                return expected is not None and all(
                    value and 0.85 * expected < value < 1.15 * expected for value in (usd, gauge)
                )

            eventually(
                near_expected, timeout=120, interval=2, what="usdPer1MTokens within 15% of the twins' figure"
            )
            assert traffic.completed > 0

            # The control loop writes each tier's share of the router's traffic into its status.
            def shares() -> list[float] | None:
                tiers = (read(testbed, "ir", "front", namespace).get("status") or {}).get("tiers") or []
                found = [t.get("trafficShare") for t in tiers]
                return found if found and None not in found else None

            assert eventually(shares, timeout=60, interval=1, what="status.tiers[].trafficShare") == [1.0]
            # ...and the router shows what each tier costs, from its model's status.
            eventually(
                lambda: all(
                    t.get("usdPer1MTokens") and t.get("gpuHours")
                    for t in read(testbed, "ir", "front", namespace)["status"]["tiers"]
                ),
                timeout=60,
                interval=1,
                what="status.tiers[] with the model's cost",
            )

            every = {
                n for d in dashboards.DASHBOARDS for q in d.queries() for n in dashboards.metric_names(q)
            }
            present = prometheus.names()
            missing = sorted(name for name in every - present if not prometheus.declared_counter(name))
            assert missing == [], "metrics the dashboards read that nothing scraped exports"

            for dashboard in dashboards.DASHBOARDS:
                for expr in dashboard.queries():
                    variable = LABEL_VALUES.match(expr)
                    if variable is None:
                        prometheus.query(with_variables(expr, namespace))  # fails unless it runs
                    else:  # a Grafana variable: its label must offer this namespace's values
                        selector = with_variables(variable["selector"], namespace)
                        assert prometheus.label_values(selector, variable["label"]), (dashboard.name, expr)

            cost = next(d for d in dashboards.DASHBOARDS if d.name == "cost")
            for row in cost.rows:
                for panel in row.panels:
                    for query in panel.queries:
                        result = prometheus.query(with_variables(query.expr, namespace))
                        assert result, f"cost panel {panel.title!r} shows nothing under traffic"
    finally:
        stop_operator(operator)
