"""Start, watch and stop the testbed's processes, always by process id."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class TestbedError(RuntimeError):
    """The testbed could not be brought up or down; the message says which part and why."""


@dataclass
class Component:
    """One running process of the testbed and where its output goes."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def start_process(name: str, argv: list[str], log_dir: Path) -> Component:
    """Start ``argv`` with stdout and stderr in ``log_dir/<name>.log``.

    Each process gets its own session so that a Ctrl-C meant for a foreground command does not
    reach the control plane; the testbed stops them itself, by pid.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    return Component(name=name, process=process, log=log)


def wait_until(component: Component, check: Callable[[], bool], *, what: str, timeout: float = 60.0) -> None:
    """Poll ``check`` until it is true; fail early, with the log, if the process has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if component.process.poll() is not None:
            raise TestbedError(
                f"{component.name} exited with code {component.process.returncode} before {what}; "
                f"last lines of {component.log}:\n{component.log_tail()}"
            )
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise TestbedError(
        f"{component.name} did not reach '{what}' within {timeout:.0f}s; "
        f"last lines of {component.log}:\n{component.log_tail()}"
    )


def stop_process(component: Component, *, grace: float = 10.0) -> None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; always reaps the child."""
    if component.process.poll() is not None:
        return
    component.process.send_signal(signal.SIGTERM)
    try:
        component.process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        component.process.kill()
        component.process.wait(timeout=grace)


def pid_alive(pid: int) -> bool:
    """True while a process with this pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"
