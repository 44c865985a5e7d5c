"""The helm CLI that the testbed builds, pointed at one testbed and kept out of the user's home."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from thrifty.testbed.cluster import Testbed


@dataclass(frozen=True)
class HelmResult:
    output: str
    seconds: float


@dataclass(frozen=True)
class Helm:
    """``helm`` against ``testbed``, with its cache, config and data under ``home``.

    >>> helm = Helm(testbed, home=tmp_path / "helm")
    >>> helm("install", "thrifty", "charts/thrifty", "--namespace", "thrifty-system", "--wait")
    """

    testbed: Testbed
    home: Path

    def environment(self) -> dict[str, str]:
        # Only what helm needs: no KUBECONFIG or in-cluster variables from the caller leak in.
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }

    def command(self, *args: str) -> list[str]:
        return [str(self.testbed.bin_dir / "helm"), f"--kubeconfig={self.testbed.kubeconfig}", *args]

    def __call__(self, *args: str, timeout: float = 300) -> HelmResult:
        """Run ``helm ARGS``; fail with helm's own message when it exits non-zero."""
        self.home.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        result = subprocess.run(
            self.command(*args), env=self.environment(), capture_output=True, text=True, timeout=timeout
        )
        seconds = time.monotonic() - started
        if result.returncode != 0:
            raise AssertionError(
                f"helm {' '.join(args)} exited {result.returncode} after {seconds:.1f}s:\n"
                f"{result.stdout}{result.stderr}"
            )
        return HelmResult(output=result.stdout, seconds=seconds)

    def start(self, *args: str, log: Path) -> subprocess.Popen[bytes]:
        """Start ``helm ARGS`` in the background (e.g. ``helm test``, which waits on a pod that
        something else must finish); its output goes to ``log``."""
        self.home.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            return subprocess.Popen(
                self.command(*args), env=self.environment(), stdout=out, stderr=subprocess.STDOUT
            )
