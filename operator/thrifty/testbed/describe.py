"""A readable picture of a running testbed: its nodes (GPU product and count where a node has GPUs,
`-` and 0 on CPU nodes) and Prometheus's scrape targets."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from thrifty.testbed.kube import core_api, node_is_ready
from thrifty.testbed.nodes import GPU_PRODUCT_LABEL, GPU_RESOURCE


def describe(kubeconfig: Path, prometheus_url: str) -> str:
    lines = [f"{'NODE':<10} {'READY':<6} {'GPU PRODUCT':<24} {'GPUS':>4} {'GPU MEM MiB':>11} {'PODS':>5}"]
    api = core_api(kubeconfig)
    pods = api.list_pod_for_all_namespaces().items
    for node in sorted(api.list_node().items, key=lambda n: n.metadata.name):
        labels = node.metadata.labels or {}
        on_node = sum(1 for p in pods if p.spec.node_name == node.metadata.name)
        lines.append(
            f"{node.metadata.name:<10} {node_is_ready(node)!s:<6} {labels.get(GPU_PRODUCT_LABEL, '-'):<24} "
            f"{(node.status.allocatable or {}).get(GPU_RESOURCE, '0'):>4} "
            f"{labels.get('nvidia.com/gpu.memory', '-'):>11} {on_node:>5}"
        )
    lines.append("")
    targets = prometheus_targets(prometheus_url)
    lines.append(f"Prometheus targets ({len(targets)}):")
    for target in targets:
        labels = target.get("labels", {})
        lines.append(
            f"  {target['scrapePool']:<18} {labels.get('namespace', ''):>12}/{labels.get('pod', ''):<30} "
            f"{target['scrapeUrl']:<36} {target['health']}"
        )
    if not targets:
        lines.append("  (none yet: pods annotated prometheus.io/scrape=true appear here)")
    return "\n".join(lines)


def prometheus_targets(prometheus_url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{prometheus_url}/api/v1/targets?state=active", timeout=5) as response:
        body = json.load(response)
    targets: list[dict[str, Any]] = body["data"]["activeTargets"]
    return targets
