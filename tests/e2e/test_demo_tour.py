"""`make demo`'s tour, run whole on a testbed of its own: Helm install, the examples and the router
Ready, a stretch of the Mooncake trace answered through the router, a PNG, and every metric the
dashboards query present in the testbed's Prometheus afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import own_network, own_testbed
from thrifty.testbed.cluster import Testbed

REPO = Path(__file__).resolve().parents[2]

NETWORK = own_network(3)


@pytest.fixture(scope="module")
def demo_testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    with own_testbed(tmp_path_factory.mktemp("demo-testbed"), NETWORK) as bed:
        yield bed


@pytest.mark.timeout(420)
def test_the_tour_runs_end_to_end(demo_testbed: Testbed, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "KUBECONFIG": str(demo_testbed.kubeconfig),
        "THRIFTY_NETNS": "1",
        "PATH": f"{demo_testbed.bin_dir}:{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        # helm's own state for this run only
        "HELM_CONFIG_HOME": str(tmp_path / "helm" / "config"),
        "HELM_CACHE_HOME": str(tmp_path / "helm" / "cache"),
        "HELM_DATA_HOME": str(tmp_path / "helm" / "data"),
    }
    command = [sys.executable, "-m", "demo", "--seconds", "30", "--speedup", "2"]
    command += ["--prometheus", demo_testbed.network.prometheus_url, "--output", str(tmp_path)]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]

    summary = json.loads(next(line for line in output.splitlines() if line.startswith('{"requests"')))
    assert summary["requests"] > 50
    assert summary["answered"] == summary["requests"], output[-3000:]
    assert set(summary["tiers"]) == {"small", "large"}  # the 4,000-token rule splits the trace
    assert (tmp_path / "summary.png").read_bytes()[:4] == b"\x89PNG"
    assert "metric names their queries use exist in the testbed's Prometheus" in output
    # The live table showed the models, their caps and costs, and the router's tiers.
    assert "llama-70b" in output
    assert "$/1M OUT" in output
    assert "ESCALATED" in output
