"""`thrifty testbed up | down | status | shell`: the testbed as a background service for a person.

`up` builds the binaries (a no-op when cached), then starts `thrifty testbed serve` inside a new
network namespace (testbed/netns.sh); that process is the namespace's anchor and supervises the
control plane. `down` signals it and checks that every process it started is gone.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from thrifty.testbed.cluster import TESTBED_DIR, Testbed, binary_dir
from thrifty.testbed.processes import TestbedError, pid_alive


def default_state_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    return Path(base) / f"thrifty-testbed-{os.getuid()}"


def read_state(state_dir: Path) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads((state_dir / "state.json").read_text())
    except FileNotFoundError:
        return None
    return state


def build() -> Path:
    subprocess.run(["bash", str(TESTBED_DIR / "build.sh")], check=True)
    return binary_dir()


def up(
    state_dir: Path, node_profile: Path, *, twin_load_seconds: float | None = None, timeout: float = 180
) -> dict[str, Any]:
    state = read_state(state_dir)
    if state and pid_alive(state["namespace_pid"]):
        print(f"testbed already up (pid {state['namespace_pid']}); `thrifty testbed down` first")
        return state
    shutil.rmtree(state_dir, ignore_errors=True)
    bin_dir = build()
    state_dir.mkdir(parents=True)
    started = time.monotonic()
    print("starting the testbed in a new network namespace ...", flush=True)
    with (state_dir / "serve.log").open("ab") as log:
        anchor = subprocess.Popen(
            [
                str(TESTBED_DIR / "netns.sh"),
                sys.executable, "-m", "thrifty", "testbed", "serve",
                "--state-dir", str(state_dir), "--nodes", str(node_profile), "--bin-dir", str(bin_dir),
                *(["--twin-load-seconds", str(twin_load_seconds)] if twin_load_seconds is not None else []),
            ],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_state(state_dir)
        if state:
            print(f"testbed up in {time.monotonic() - started:.1f}s (control plane {state['up_seconds']}s)")
            return state
        if anchor.poll() is not None:
            log_text = (state_dir / "serve.log").read_text(errors="replace")
            shutil.rmtree(state_dir, ignore_errors=True)
            raise TestbedError(f"the testbed failed to come up:\n{log_text[-4000:]}")
        time.sleep(0.3)
    os.kill(anchor.pid, signal.SIGTERM)
    raise TestbedError(f"the testbed did not come up within {timeout:.0f}s; see {state_dir}/serve.log")


def serve(state_dir: Path, node_profile: Path, bin_dir: Path, *, twin_load_seconds: float | None) -> None:
    """Run inside the namespace: start everything, then hold until SIGTERM/SIGINT, then stop."""
    testbed = Testbed(
        state_dir=state_dir, bin_dir=bin_dir, node_profile=node_profile, twin_load_seconds=twin_load_seconds
    )
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    testbed.start()
    try:
        while not stopping:
            time.sleep(0.2)
    finally:
        testbed.stop()
        testbed.remove_state()


def down(state_dir: Path, *, timeout: float = 60) -> None:
    state = read_state(state_dir)
    if state is None:
        print("testbed is not running")
        shutil.rmtree(state_dir, ignore_errors=True)
        return
    anchor = int(state["namespace_pid"])
    if pid_alive(anchor):
        os.kill(anchor, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(anchor) and time.monotonic() < deadline:
        time.sleep(0.2)
    # The anchor stops its children; if it died without doing so, finish the job by pid.
    for name, pid in state["components"].items():
        if pid_alive(pid):
            print(f"stopping leftover {name} (pid {pid})")
            os.kill(pid, signal.SIGKILL)
    leftovers = [name for name, pid in state["components"].items() if pid_alive(pid)]
    shutil.rmtree(state_dir, ignore_errors=True)
    if pid_alive(anchor) or leftovers:
        raise TestbedError(f"processes still alive after down: anchor={pid_alive(anchor)} {leftovers}")
    print("testbed down: every process stopped, namespace and state removed")


def _nsenter(state: dict[str, Any]) -> list[str]:
    argv = ["nsenter", "-t", str(state["namespace_pid"]), "-n"]
    if os.getuid() != 0:
        argv += ["-U", "--preserve-credentials"]
    return argv


def _namespace_env(state: dict[str, Any]) -> dict[str, str]:
    env = dict(os.environ)
    env["KUBECONFIG"] = state["kubeconfig"]
    env["THRIFTY_NETNS"] = "1"
    env["PATH"] = f"{state['bin_dir']}:{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return env


def status(state_dir: Path) -> int:
    state = read_state(state_dir)
    if state is None or not pid_alive(state["namespace_pid"]):
        print("testbed is not running")
        return 1
    print(f"testbed up: namespace anchor pid {state['namespace_pid']}, state in {state_dir}")
    for name, pid in state["components"].items():
        print(f"  {name:<24} pid {pid:<8} {'running' if pid_alive(pid) else 'STOPPED'}")
    print(f"  kubeconfig {state['kubeconfig']}   prometheus {state['prometheus']} (inside the namespace)")
    command = [sys.executable, "-m", "thrifty", "testbed", "describe", "--kubeconfig", state["kubeconfig"]]
    return subprocess.run([*_nsenter(state), *command], env=_namespace_env(state)).returncode


def shell(state_dir: Path, command: list[str]) -> int:
    state = read_state(state_dir)
    if state is None or not pid_alive(state["namespace_pid"]):
        print("testbed is not running: `thrifty testbed up` first", file=sys.stderr)
        return 1
    argv = command or ["bash", "-i"]
    if not command:
        print("inside the testbed namespace; KUBECONFIG is set and kubectl is on PATH; exit to leave")
    return subprocess.run([*_nsenter(state), *argv], env=_namespace_env(state)).returncode
