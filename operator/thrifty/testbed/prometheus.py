"""Prometheus configuration for the testbed: discover pods through the apiserver, scrape by annotation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# A short interval keeps tests and the demo responsive; production uses 15-30 s.
SCRAPE_INTERVAL = "2s"

OPERATOR_METRICS_PORT = 18090
"""Where an operator run on the testbed serves its metrics (`thrifty operator --metrics-port`).
It runs as a local process, not in a pod, so pod discovery never finds it: a static job does."""


def prometheus_config(kubeconfig: Path) -> dict[str, Any]:
    """Scrape every pod annotated ``prometheus.io/scrape: "true"`` at its own IP, and the operator.

    ``prometheus.io/port`` and ``prometheus.io/path`` pick the port and path. Only Running pods are
    kept, so a pod that is still Pending never shows up as a failing target. The operator's job
    keeps the series' own ``namespace`` and ``model`` labels (``honor_labels``): they name the
    object a series is about, not where the operator runs. While no operator serves on
    ``OPERATOR_METRICS_PORT`` that target is simply down.
    """
    annotation = "__meta_kubernetes_pod_annotation_prometheus_io_"
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            {
                "job_name": "kubernetes-pods",
                # Like the chart's PodMonitors and ServiceMonitor: a series' own labels win, so the
                # operator pod's per-model series keep the model's namespace. vLLM and router
                # series carry no namespace or pod label of their own.
                "honor_labels": True,
                "kubernetes_sd_configs": [{"role": "pod", "kubeconfig_file": str(kubeconfig)}],
                "relabel_configs": [
                    {"source_labels": [annotation + "scrape"], "action": "keep", "regex": "true"},
                    {"source_labels": ["__meta_kubernetes_pod_phase"], "action": "keep", "regex": "Running"},
                    {
                        "source_labels": [annotation + "path"],
                        "action": "replace",
                        "regex": "(.+)",
                        "target_label": "__metrics_path__",
                    },
                    {
                        "source_labels": ["__meta_kubernetes_pod_ip", annotation + "port"],
                        "action": "replace",
                        "regex": "(.+);(\\d+)",
                        "replacement": "$1:$2",
                        "target_label": "__address__",
                    },
                    {"action": "labelmap", "regex": "__meta_kubernetes_pod_label_(.+)"},
                    {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                    {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                    {"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node"},
                ],
            },
            {
                "job_name": "thrifty-operator",
                "honor_labels": True,
                "static_configs": [{"targets": [f"127.0.0.1:{OPERATOR_METRICS_PORT}"]}],
            },
        ],
    }
