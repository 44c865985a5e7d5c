"""The Grafana dashboards of the chart (operator, models, router, cost), as data.

Each panel is a title, a line on what it shows, and PromQL; `dashboard_json` lays the panels out
in Grafana's dashboard JSON model (schemaVersion 39) with a Prometheus data-source variable, so
the same files import into any Grafana. tools/chart/generate.py writes them to
charts/thrifty/dashboards/, and the chart ships each as a ConfigMap for the dashboard sidecar.

Metric names come from three places, and a unit test checks every query against them:

- vLLM's own metrics (`vllm:*`), as the twin exports them (operator/thrifty/twin/vllm_metrics.py);
- the router's (`thrifty_router_*`, operator/thrifty/router/metrics.py);
- the operator's (`OPERATOR_METRICS` below: the contract the operator exports).

Series labels: vLLM and router series carry the pod's namespace and, from the pod label
`thrifty.dev/model` (or `thrifty.dev/router`), `thrifty_dev_model` (`thrifty_dev_router`), as
both the annotation-based scrape (labelmap) and the chart's PodMonitors (podTargetLabels) add
them. The operator's series carry the object's own `namespace` and `model` labels (its
ServiceMonitor honours them, as the testbed's static `thrifty-operator` job does). Per-tier cost
joins the router's `tier` to the model behind it through the operator's `thrifty_tier_info`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

OPERATOR_METRICS: dict[str, str] = {
    "thrifty_reconcile_total": "counter {kind, result}: reconciles by outcome (success, degraded, error)",
    "thrifty_decisions_total": "counter {namespace, model, action}: control-loop changes (status.decisions[].action)",
    "thrifty_metrics_query_errors_total": "counter {namespace, model}: Prometheus queries of the control loop that failed",
    "thrifty_model_gpu_hours_total": "counter {namespace, model}: GPU-hours the model's Running pods have held",
    "thrifty_model_usd_per_million_tokens": "gauge {namespace, model}: dollars per million generated tokens at spec.cost.gpuHourlyUSD",
    "thrifty_tier_info": "gauge {namespace, router, tier, model}: 1 per router tier, naming its InferenceModel",
}
"""The operator's metrics the dashboards read, with type and labels."""

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
MODEL = 'namespace=~"$namespace", thrifty_dev_model=~"$model"'
"""vLLM series of the selected models (labels from the pod)."""
OWN_MODEL = 'namespace=~"$namespace", model=~"$model"'
"""Operator series of the selected models (the operator's own labels)."""
OWN_ROUTER = 'namespace=~"$namespace", router=~"$router"'
"""Operator series of the selected routers (`thrifty_tier_info`)."""
ROUTER = 'namespace=~"$namespace", thrifty_dev_router=~"$router"'
"""Router series of the selected routers."""


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 12


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    query: str
    """A Grafana `label_values(...)` query."""


@dataclass(frozen=True)
class Dashboard:
    name: str
    title: str
    description: str
    variables: tuple[Variable, ...]
    rows: tuple[Row, ...]
    tags: tuple[str, ...] = field(default=("thrifty",))

    def queries(self) -> list[str]:
        exprs = [q.expr for row in self.rows for panel in row.panels for q in panel.queries]
        return exprs + [v.query for v in self.variables]


def _quantile(q: float, metric: str, selector: str, by: str) -> str:
    return (
        f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{{{selector}}}[$__rate_interval])))"
    )


NAMESPACE_OF_MODELS = Variable("namespace", "Namespace", "label_values(vllm:num_requests_running, namespace)")
MODEL_VARIABLE = Variable(
    "model",
    "Model",
    'label_values(vllm:num_requests_running{namespace=~"$namespace"}, thrifty_dev_model)',
)

OPERATOR = Dashboard(
    name="operator",
    title="Thrifty / Operator",
    description="Is the operator keeping up: reconciles, control-loop decisions, Prometheus query errors.",
    variables=(
        Variable("namespace", "Namespace", "label_values(thrifty_decisions_total, namespace)"),
        Variable("model", "Model", 'label_values(thrifty_decisions_total{namespace=~"$namespace"}, model)'),
    ),
    rows=(
        Row(
            "Reconciles",
            (
                Panel(
                    "Reconciles by result",
                    "Every trigger ends in one reconcile: success, degraded (the spec cannot be carried out) or error.",
                    (
                        Query(
                            "sum by (result) (rate(thrifty_reconcile_total[$__rate_interval]))", "{{result}}"
                        ),
                    ),
                    unit="ops",
                ),
                Panel(
                    "Reconcile error ratio",
                    "Share of reconciles that raised; a lasting rise means API errors or a bug.",
                    (
                        Query(
                            'sum(rate(thrifty_reconcile_total{result="error"}[$__rate_interval]))'
                            " / sum(rate(thrifty_reconcile_total[$__rate_interval]))",
                            "errors",
                        ),
                    ),
                    unit="percentunit",
                ),
            ),
        ),
        Row(
            "Control loop",
            (
                Panel(
                    "Decisions by action",
                    "Scale-ups, scale-downs, cap moves and engine-flag rolls per hour (holds and steady steps are not counted).",
                    (
                        Query(
                            f"sum by (action) (increase(thrifty_decisions_total{{{OWN_MODEL}}}[1h]))",
                            "{{action}}",
                        ),
                    ),
                ),
                Panel(
                    "Prometheus query errors",
                    "Failed metric queries: the loop holds affected models still (MetricsAvailable=False).",
                    (Query("sum(rate(thrifty_metrics_query_errors_total[$__rate_interval]))", "errors/s"),),
                    unit="ops",
                ),
                Panel(
                    "Decisions in range, by model",
                    "What the loop did to each model over the selected time range.",
                    (
                        Query(
                            f"sum by (namespace, model, action) (increase(thrifty_decisions_total{{{OWN_MODEL}}}[$__range]))",
                            "{{namespace}}/{{model}} {{action}}",
                        ),
                    ),
                    kind="table",
                    width=24,
                ),
            ),
        ),
    ),
)

MODELS = Dashboard(
    name="models",
    title="Thrifty / Models",
    description="Per InferenceModel: load against the batch limit, latency against the SLO, throughput, decisions.",
    variables=(NAMESPACE_OF_MODELS, MODEL_VARIABLE),
    rows=(
        Row(
            "Load",
            (
                Panel(
                    "Running requests per replica",
                    "Sequences in the batch of each vLLM pod; batch utilization is this over max_num_seqs.",
                    (
                        Query(
                            f"sum by (namespace, thrifty_dev_model, pod) (vllm:num_requests_running{{{MODEL}}})",
                            "{{thrifty_dev_model}} {{pod}}",
                        ),
                    ),
                ),
                Panel(
                    "Waiting requests",
                    "Queued inside vLLM: the batch is full (or the KV cache is).",
                    (
                        Query(
                            f"sum by (namespace, thrifty_dev_model) (vllm:num_requests_waiting{{{MODEL}}})",
                            "{{thrifty_dev_model}}",
                        ),
                    ),
                ),
                Panel(
                    "Replicas serving",
                    "vLLM pods scraped per model.",
                    (
                        Query(
                            f"count by (namespace, thrifty_dev_model) (vllm:num_requests_running{{{MODEL}}})",
                            "{{thrifty_dev_model}}",
                        ),
                    ),
                ),
                Panel(
                    "KV-cache usage per replica",
                    "1 is full: new sequences wait and running ones may be preempted.",
                    (
                        Query(
                            f"max by (namespace, thrifty_dev_model, pod) (vllm:kv_cache_usage_perc{{{MODEL}}})",
                            "{{thrifty_dev_model}} {{pod}}",
                        ),
                    ),
                    unit="percentunit",
                ),
            ),
        ),
        Row(
            "Latency",
            (
                Panel(
                    "Time to first token, p95",
                    "Compare with spec.scaling.slo.ttftP95.",
                    (
                        Query(
                            _quantile(
                                0.95,
                                "vllm:time_to_first_token_seconds",
                                MODEL,
                                "namespace, thrifty_dev_model",
                            ),
                            "{{thrifty_dev_model}}",
                        ),
                    ),
                    unit="s",
                ),
                Panel(
                    "Inter-token latency, p95",
                    "Compare with spec.scaling.slo.itlP95; it grows with the batch.",
                    (
                        Query(
                            _quantile(
                                0.95,
                                "vllm:inter_token_latency_seconds",
                                MODEL,
                                "namespace, thrifty_dev_model",
                            ),
                            "{{thrifty_dev_model}}",
                        ),
                    ),
                    unit="s",
                ),
                Panel(
                    "Request latency, p50 and p95",
                    "From arrival at vLLM to the last token.",
                    (
                        Query(
                            _quantile(
                                0.5, "vllm:e2e_request_latency_seconds", MODEL, "namespace, thrifty_dev_model"
                            ),
                            "p50 {{thrifty_dev_model}}",
                        ),
                        Query(
                            _quantile(
                                0.95,
                                "vllm:e2e_request_latency_seconds",
                                MODEL,
                                "namespace, thrifty_dev_model",
                            ),
                            "p95 {{thrifty_dev_model}}",
                        ),
                    ),
                    unit="s",
                ),
                Panel(
                    "Queue time in vLLM, p95",
                    "Time requests spent waiting for a place in the batch.",
                    (
                        Query(
                            _quantile(
                                0.95, "vllm:request_queue_time_seconds", MODEL, "namespace, thrifty_dev_model"
                            ),
                            "{{thrifty_dev_model}}",
                        ),
                    ),
                    unit="s",
                ),
            ),
        ),
        Row(
            "Throughput and cache",
            (
                Panel(
                    "Tokens per second",
                    "Prompt tokens prefilled and tokens generated.",
                    (
                        Query(
                            f"sum by (namespace, thrifty_dev_model) (rate(vllm:prompt_tokens_total{{{MODEL}}}[$__rate_interval]))",
                            "prompt {{thrifty_dev_model}}",
                        ),
                        Query(
                            f"sum by (namespace, thrifty_dev_model) (rate(vllm:generation_tokens_total{{{MODEL}}}[$__rate_interval]))",
                            "generated {{thrifty_dev_model}}",
                        ),
                    ),
                ),
                Panel(
                    "Finished requests by reason",
                    "stop (natural end), length (hit max_tokens), abort (client went away).",
                    (
                        Query(
                            f"sum by (thrifty_dev_model, finished_reason) (rate(vllm:request_success_total{{{MODEL}}}[$__rate_interval]))",
                            "{{thrifty_dev_model}} {{finished_reason}}",
                        ),
                    ),
                    unit="reqps",
                ),
                Panel(
                    "Preemptions per second",
                    "Sequences evicted for lack of KV cache; the loop lowers the cap when they appear.",
                    (
                        Query(
                            f"sum by (namespace, thrifty_dev_model) (rate(vllm:num_preemptions_total{{{MODEL}}}[$__rate_interval]))",
                            "{{thrifty_dev_model}}",
                        ),
                    ),
                ),
                Panel(
                    "Prefix-cache hit rate",
                    "Prompt tokens served from cached blocks; the router's affinity keeps it high.",
                    (
                        Query(
                            f"sum by (namespace, thrifty_dev_model) (rate(vllm:prefix_cache_hits_total{{{MODEL}}}[$__rate_interval]))"
                            f" / sum by (namespace, thrifty_dev_model) (rate(vllm:prefix_cache_queries_total{{{MODEL}}}[$__rate_interval]))",
                            "{{thrifty_dev_model}}",
                        ),
                    ),
                    unit="percentunit",
                ),
            ),
        ),
        Row(
            "Decisions",
            (
                Panel(
                    "Control-loop decisions",
                    "Each decision's reason is in the model's status.decisions and its Events.",
                    (
                        Query(
                            f"sum by (model, action) (increase(thrifty_decisions_total{{{OWN_MODEL}}}[$__rate_interval]))",
                            "{{model}} {{action}}",
                        ),
                    ),
                    width=24,
                ),
            ),
        ),
    ),
)

ROUTER_DASHBOARD = Dashboard(
    name="router",
    title="Thrifty / Router",
    description="Per InferenceRouter: traffic per tier, escalations, queueing, prefix affinity, replica load against the cap.",
    variables=(
        Variable("namespace", "Namespace", "label_values(thrifty_router_requests_total, namespace)"),
        Variable(
            "router",
            "Router",
            'label_values(thrifty_router_requests_total{namespace=~"$namespace"}, thrifty_dev_router)',
        ),
    ),
    rows=(
        Row(
            "Traffic",
            (
                Panel(
                    "Requests by tier and status",
                    "Answered requests, by the tier that answered last.",
                    (
                        Query(
                            f"sum by (tier, code) (rate(thrifty_router_requests_total{{{ROUTER}}}[$__rate_interval]))",
                            "{{tier}} {{code}}",
                        ),
                    ),
                    unit="reqps",
                ),
                Panel(
                    "Traffic share by tier",
                    "How much of the traffic each tier serves: the cheaper tiers should carry most of it.",
                    (
                        Query(
                            f"sum by (tier) (rate(thrifty_router_requests_total{{{ROUTER}}}[$__rate_interval]))"
                            f" / ignoring (tier) group_left () sum(rate(thrifty_router_requests_total{{{ROUTER}}}[$__rate_interval]))",
                            "{{tier}}",
                        ),
                    ),
                    unit="percentunit",
                ),
                Panel(
                    "Escalations",
                    "Requests retried (or sent) one tier up, by trigger.",
                    (
                        Query(
                            f"sum by (from_tier, to_tier, trigger) (rate(thrifty_router_escalations_total{{{ROUTER}}}[$__rate_interval]))",
                            "{{from_tier}} -> {{to_tier}} ({{trigger}})",
                        ),
                    ),
                    unit="reqps",
                ),
                Panel(
                    "Non-2xx share",
                    "Answers other than 2xx (429/503 from admission included).",
                    (
                        Query(
                            f'sum by (tier) (rate(thrifty_router_requests_total{{{ROUTER}, code!~"2.."}}[$__rate_interval]))'
                            f" / sum by (tier) (rate(thrifty_router_requests_total{{{ROUTER}}}[$__rate_interval]))",
                            "{{tier}}",
                        ),
                    ),
                    unit="percentunit",
                ),
            ),
        ),
        Row(
            "Admission and latency",
            (
                Panel(
                    "Queue wait, p95",
                    "Time a request waited for a replica under its cap.",
                    (
                        Query(
                            _quantile(0.95, "thrifty_router_queue_seconds", ROUTER, "tier"),
                            "{{tier}}",
                        ),
                    ),
                    unit="s",
                ),
                Panel(
                    "Queue length",
                    "Requests waiting at the router, per tier.",
                    (Query(f"sum by (tier) (thrifty_router_queue_length{{{ROUTER}}})", "{{tier}}"),),
                ),
                Panel(
                    "Time to first byte, p95",
                    "From dispatch to the replica's first byte (TTFT for streams).",
                    (
                        Query(
                            _quantile(0.95, "thrifty_router_first_byte_seconds", ROUTER, "tier"),
                            "{{tier}}",
                        ),
                    ),
                    unit="s",
                ),
                Panel(
                    "In flight per replica against the cap",
                    "The router never puts more than the cap on a replica.",
                    (
                        Query(
                            f"max by (tier, replica) (thrifty_router_in_flight{{{ROUTER}}})",
                            "{{tier}} {{replica}}",
                        ),
                        Query(
                            f"max by (tier) (thrifty_router_max_in_flight_per_replica{{{ROUTER}}})",
                            "cap {{tier}}",
                        ),
                    ),
                ),
            ),
        ),
        Row(
            "Affinity and health",
            (
                Panel(
                    "Affinity hit ratio",
                    "Replica picks that followed the prefix or the home replica (reasons prefix and home).",
                    (
                        Query(
                            f'sum by (tier) (rate(thrifty_router_replica_picks_total{{{ROUTER}, reason=~"prefix|home"}}[$__rate_interval]))'
                            f" / sum by (tier) (rate(thrifty_router_replica_picks_total{{{ROUTER}}}[$__rate_interval]))",
                            "{{tier}}",
                        ),
                    ),
                    unit="percentunit",
                ),
                Panel(
                    "Ready replicas",
                    "EndpointSlice endpoints the router may use, per tier.",
                    (Query(f"max by (tier) (thrifty_router_ready_replicas{{{ROUTER}}})", "{{tier}}"),),
                ),
                Panel(
                    "Fail-open requests",
                    "Sent without the router's own state (to the Service or the least-loaded replica).",
                    (
                        Query(
                            f"sum by (tier, reason) (rate(thrifty_router_fail_open_total{{{ROUTER}}}[$__rate_interval]))",
                            "{{tier}} {{reason}}",
                        ),
                    ),
                    unit="reqps",
                ),
                Panel(
                    "Configuration reloads",
                    "router.json re-read after the operator changed it; invalid ones keep the last good file.",
                    (
                        Query(
                            f"sum by (result) (increase(thrifty_router_config_reloads_total{{{ROUTER}}}[$__rate_interval]))",
                            "{{result}}",
                        ),
                    ),
                ),
            ),
        ),
    ),
)


def _per_tier(model_expr: str) -> str:
    """`model_expr` (one series per namespace and model) carried onto each router tier that
    model serves, through `thrifty_tier_info`."""
    return f"thrifty_tier_info{{{OWN_ROUTER}}} * on (namespace, model) group_left () ({model_expr})"


_GPUS_HELD = "3600 * sum by (namespace, model) (rate(thrifty_model_gpu_hours_total[$__rate_interval]))"
_USD_PER_MILLION = "max by (namespace, model) (thrifty_model_usd_per_million_tokens)"
_GPU_HOURS_IN_RANGE = "sum by (namespace, model) (increase(thrifty_model_gpu_hours_total[$__range]))"

COST = Dashboard(
    name="cost",
    title="Thrifty / Cost",
    description=(
        "GPU-hours and dollars per million generated tokens per model and per router tier, and each "
        "router's token and estimated-cost split across its tiers."
    ),
    variables=(
        Variable("namespace", "Namespace", "label_values(thrifty_model_gpu_hours_total, namespace)"),
        Variable(
            "model", "Model", 'label_values(thrifty_model_gpu_hours_total{namespace=~"$namespace"}, model)'
        ),
        Variable("router", "Router", 'label_values(thrifty_tier_info{namespace=~"$namespace"}, router)'),
    ),
    rows=(
        Row(
            "Per model",
            (
                Panel(
                    "GPUs held",
                    "GPU-hours per hour: the GPUs the model's Running pods hold (Pending pods hold none).",
                    (
                        Query(
                            f"3600 * sum by (namespace, model) (rate(thrifty_model_gpu_hours_total{{{OWN_MODEL}}}[$__rate_interval]))",
                            "{{namespace}}/{{model}}",
                        ),
                    ),
                ),
                Panel(
                    "Dollars per million generated tokens",
                    "spec.cost.gpuHourlyUSD x the GPU-hours of the serving replicas over the control loop's"
                    " window / the tokens they generated (status.cost.usdPer1MTokens). No line: no price or no traffic.",
                    (
                        Query(
                            f"max by (namespace, model) (thrifty_model_usd_per_million_tokens{{{OWN_MODEL}}})",
                            "{{namespace}}/{{model}}",
                        ),
                    ),
                    unit="currencyUSD",
                ),
                Panel(
                    "GPU-hours in the time range",
                    "Total per model over the selected range (status.cost.gpuHours has the total since creation).",
                    (
                        Query(
                            f"sum by (namespace, model) (increase(thrifty_model_gpu_hours_total{{{OWN_MODEL}}}[$__range]))",
                            "{{namespace}}/{{model}}",
                        ),
                    ),
                    kind="table",
                ),
                Panel(
                    "Tokens per second per model",
                    "Generated tokens (what the price per token is reckoned on) and prompt tokens: the work the GPU-hours bought.",
                    (
                        Query(
                            f"sum by (namespace, thrifty_dev_model) (rate(vllm:generation_tokens_total{{{MODEL}}}[$__rate_interval]))",
                            "generated {{namespace}}/{{thrifty_dev_model}}",
                        ),
                        Query(
                            f"sum by (namespace, thrifty_dev_model) (rate(vllm:prompt_tokens_total{{{MODEL}}}[$__rate_interval]))",
                            "prompt {{namespace}}/{{thrifty_dev_model}}",
                        ),
                    ),
                ),
            ),
        ),
        Row(
            "Per router tier",
            (
                Panel(
                    "GPUs held per tier",
                    "The GPUs of the model behind each tier.",
                    (Query(f"sum by (router, tier) ({_per_tier(_GPUS_HELD)})", "{{router}} {{tier}}"),),
                ),
                Panel(
                    "Dollars per million generated tokens per tier",
                    "The price per token of the model behind each tier.",
                    (Query(f"max by (router, tier) ({_per_tier(_USD_PER_MILLION)})", "{{router}} {{tier}}"),),
                    unit="currencyUSD",
                ),
                Panel(
                    "GPU-hours per tier in the time range",
                    "Total over the selected range of the model behind each tier.",
                    (
                        Query(
                            f"sum by (router, tier) ({_per_tier(_GPU_HOURS_IN_RANGE)})", "{{router}} {{tier}}"
                        ),
                    ),
                    kind="table",
                ),
                Panel(
                    "Tokens per second per tier",
                    "Prompt and completion tokens the router sent to each tier.",
                    (
                        Query(
                            f"sum by (tier) (rate(thrifty_router_completion_tokens_total{{{ROUTER}}}[$__rate_interval]))",
                            "completion {{tier}}",
                        ),
                        Query(
                            f"sum by (tier) (rate(thrifty_router_prompt_tokens_total{{{ROUTER}}}[$__rate_interval]))",
                            "prompt {{tier}}",
                        ),
                    ),
                ),
                Panel(
                    "Token share per tier",
                    "Each tier's share of the router's tokens (prompt + completion): the cheaper tiers should carry most.",
                    (
                        Query(
                            f"(sum by (tier) (rate(thrifty_router_prompt_tokens_total{{{ROUTER}}}[$__rate_interval]))"
                            f" + sum by (tier) (rate(thrifty_router_completion_tokens_total{{{ROUTER}}}[$__rate_interval])))"
                            f" / ignoring (tier) group_left () (sum(rate(thrifty_router_prompt_tokens_total{{{ROUTER}}}[$__rate_interval]))"
                            f" + sum(rate(thrifty_router_completion_tokens_total{{{ROUTER}}}[$__rate_interval])))",
                            "{{tier}}",
                        ),
                    ),
                    unit="percentunit",
                ),
                Panel(
                    "Estimated cost share per tier",
                    "Tokens times each tier's costWeight, as a share of the router's total.",
                    (
                        Query(
                            f"sum by (tier) (rate(thrifty_router_cost_total{{{ROUTER}}}[$__rate_interval]))"
                            f" / ignoring (tier) group_left () sum(rate(thrifty_router_cost_total{{{ROUTER}}}[$__rate_interval]))",
                            "{{tier}}",
                        ),
                    ),
                    unit="percentunit",
                ),
            ),
        ),
    ),
)

DASHBOARDS: tuple[Dashboard, ...] = (OPERATOR, MODELS, ROUTER_DASHBOARD, COST)


def _variable_json(variable: Variable) -> dict[str, Any]:
    return {
        "name": variable.name,
        "label": variable.label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": variable.query,
        "query": {"query": variable.query, "refId": f"{variable.name}-values"},
        "refresh": 2,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "sort": 1,
        "current": {},
        "hide": 0,
    }


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    targets = [
        {
            "refId": chr(ord("A") + index),
            "datasource": DATASOURCE,
            "expr": query.expr,
            "legendFormat": query.legend,
        }
        | ({"format": "table", "instant": True} if panel.kind == "table" else {"range": True})
        for index, query in enumerate(panel.queries)
    ]
    body: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "targets": targets,
    }
    if panel.kind == "timeseries":
        body["options"] = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    return body


def dashboard_json(dashboard: Dashboard) -> dict[str, Any]:
    """Grafana's dashboard JSON model: rows across the full width, panels two to a line."""
    panels: list[dict[str, Any]] = []
    panel_id, y = 1, 0
    for row in dashboard.rows:
        panels.append(
            {
                "id": panel_id,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        panel_id, y, x = panel_id + 1, y + 1, 0
        for panel in row.panels:
            if x + panel.width > 24:
                x, y = 0, y + 8
            panels.append(_panel_json(panel, panel_id, x, y))
            panel_id, x = panel_id + 1, x + panel.width
        y += 8
    datasource_variable = {
        "name": "datasource",
        "label": "Prometheus",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
    }
    return {
        "uid": f"thrifty-{dashboard.name}",
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": list(dashboard.tags),
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-3h", "to": "now"},
        "timezone": "browser",
        "templating": {"list": [datasource_variable, *(_variable_json(v) for v in dashboard.variables)]},
        "annotations": {"list": []},
        "panels": panels,
    }


def dashboard_files() -> dict[str, str]:
    """charts/thrifty/dashboards/<name>.json for every dashboard."""
    return {f"{d.name}.json": json.dumps(dashboard_json(d), indent=2) + "\n" for d in DASHBOARDS}


_NOT_METRICS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
    "le", "inf", "nan",
}  # fmt: skip
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or Grafana `label_values(...)` query) reads.

    Strips what cannot name a metric: strings, label matchers `{...}`, ranges `[...]`, grouping
    clauses `by (...)` / `on (...)` / ..., function names (followed by `(`), numbers and keywords.
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    # label_values(metric, label): the second argument is a label.
    text = re.sub(r"(label_values\s*\([^,]*),[^)]*\)", r"\1)", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name = match.group(0)
        following = text[match.end() :].lstrip()
        if following.startswith("(") or name.lower() in _NOT_METRICS or name.startswith("$"):
            continue
        if match.start() > 0 and text[match.start() - 1] in "$.0123456789":
            continue
        names.add(name)
    return names
