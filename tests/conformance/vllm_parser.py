"""Ask the real vLLM parser about `vllm serve` argument lists, from a test.

vLLM lives in its own virtualenv (`.venv-vllm`, built by `make vllm-venv`) because it pulls torch;
the operator's virtualenv never imports it. `check_with_real_parser` runs
`tools/vllm/check_args.py` there once for a whole batch, since starting vLLM takes seconds:

    results = check_with_real_parser([["meta-llama/Llama-3.1-8B-Instruct", "--max-num-seqs", "256"]])
    assert results[0].ok, results[0].error

A missing `.venv-vllm` fails the calling test (never skips it): a conformance suite that silently
did not run would look like one that passed.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
CHECKER = REPO / "tools" / "vllm" / "check_args.py"
GENERATOR = REPO / "tools" / "vllm" / "generate_spec.py"
# Importing vLLM takes about 10 s on an idle CI core; leave room for a busy one.
VLLM_TIMEOUT_S = 100


@dataclass(frozen=True)
class RealParse:
    """What `vllm serve` made of one argument list, short of loading the model."""

    ok: bool
    error: str | None
    """vLLM's own message when it refused the list."""
    values: dict[str, Any] | None
    """The parsed namespace by dest, where JSON can carry the value; None when refused."""


def vllm_python() -> Path:
    """The interpreter of `.venv-vllm`; fails the calling test when it is not built."""
    if not VLLM_PYTHON.exists():
        pytest.fail(
            f"{VLLM_PYTHON.relative_to(REPO)} is missing: run `make vllm-venv` to build vLLM's "
            "virtualenv (the vLLM conformance tests need the real parser)",
            pytrace=False,
        )
    return VLLM_PYTHON


def run_vllm_tool(script: Path, *args: str, stdin: str = "") -> str:
    """Run one of tools/vllm/*.py under `.venv-vllm` and return its stdout."""
    completed = subprocess.run(
        [str(vllm_python()), str(script), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=VLLM_TIMEOUT_S,
        check=False,
    )
    if completed.returncode != 0:
        pytest.fail(
            f"{script.name} failed ({completed.returncode}):\n{completed.stderr[-3000:]}", pytrace=False
        )
    return completed.stdout


def check_with_real_parser(argv_lists: Sequence[Sequence[str]]) -> list[RealParse]:
    """Parse each list (the words after `vllm serve`) with vLLM's parser and EngineArgs."""
    output = run_vllm_tool(CHECKER, stdin=json.dumps([list(argv) for argv in argv_lists]))
    return [RealParse(**result) for result in json.loads(output)]


def assert_real_parser_accepts(argv_lists: Sequence[Sequence[str]]) -> None:
    """Fail naming every list the real parser refuses, with vLLM's reason."""
    refused = [
        f"{list(argv)}: {result.error}"
        for argv, result in zip(argv_lists, check_with_real_parser(argv_lists), strict=True)
        if not result.ok
    ]
    assert not refused, "vLLM refuses:\n" + "\n".join(refused)
