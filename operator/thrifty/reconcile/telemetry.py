"""The operator's own Prometheus metrics: what it reconciled, what it decided, what it could not read.

Names are stable API: the Grafana dashboards in charts/thrifty query them.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RECONCILES = Counter(
    "thrifty_reconcile",
    "Reconciles of Thrifty objects, by kind and result (applied, degraded, error).",
    ["kind", "result"],
)
DECISIONS = Counter(
    "thrifty_decisions",
    "Control-loop decisions that changed something, by model and action.",
    ["namespace", "model", "action"],
)
METRICS_QUERY_ERRORS = Counter(
    "thrifty_metrics_query_errors",
    "Prometheus queries of the control loop that failed or returned stale data.",
    ["namespace", "model"],
)
GPU_HOURS = Counter(
    "thrifty_model_gpu_hours",
    "GPU-hours used by each model's replicas since the operator started.",
    ["namespace", "model"],
)
USD_PER_MILLION_TOKENS = Gauge(
    "thrifty_model_usd_per_million_tokens",
    "Cost of each model per million tokens (prompt + generated) over the control loop's window.",
    ["namespace", "model"],
)
EFFECTIVE_CAP = Gauge(
    "thrifty_model_effective_max_num_seqs",
    "The per-replica concurrency cap the router enforces for each model.",
    ["namespace", "model"],
)
ENGINE_MAX_NUM_SEQS = Gauge(
    "thrifty_model_engine_max_num_seqs",
    "The --max-num-seqs flag each model's engines run with.",
    ["namespace", "model"],
)
REPLICAS = Gauge(
    "thrifty_model_replicas",
    "Replicas of each model decided by the control loop.",
    ["namespace", "model"],
)
