"""`thrifty testbed up` / `down` as a person runs them: a second, separate testbed in its own
network namespace (nested inside the test run's), timed, and checked to leave nothing behind."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from thrifty.testbed.processes import pid_alive


def thrifty(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "thrifty", "testbed", *args], capture_output=True, text=True, timeout=300
    )


def test_up_reports_nodes_and_down_leaves_no_process_or_state(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    started = time.monotonic()
    up = thrifty("up", "--state-dir", str(state_dir))
    up_seconds = time.monotonic() - started
    assert up.returncode == 0, up.stdout + up.stderr
    state = json.loads((state_dir / "state.json").read_text())
    pids = {"anchor": state["namespace_pid"], **state["components"]}
    assert set(state["components"]) == {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
        "prometheus",
        "twins",
        "process-pods",
    }
    assert all(pid_alive(pid) for pid in pids.values())
    # `up` ends by describing the testbed: every simulated node, GPU or CPU, is listed Ready.
    for node in ("h100-0", "h100-3", "l4-1", "cpu-1"):
        assert any(line.startswith(node) and " True " in line for line in up.stdout.splitlines()), up.stdout
    print(f"warm `thrifty testbed up`: {up_seconds:.1f}s")

    down = thrifty("down", "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stdout + down.stderr
    still_alive = {name: pid for name, pid in pids.items() if pid_alive(pid)}
    assert still_alive == {}
    assert not state_dir.exists()
    assert "not running" in thrifty("status", "--state-dir", str(state_dir)).stdout
