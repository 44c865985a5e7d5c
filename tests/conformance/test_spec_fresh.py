"""The committed vLLM argument spec is what the pinned vLLM's parser says today."""

from __future__ import annotations

import json
from pathlib import Path

from vllm_parser import GENERATOR, REPO, run_vllm_tool

COMMITTED_SPEC = REPO / "operator" / "thrifty" / "vllm_args" / "spec.json"


def test_committed_spec_matches_a_fresh_generation(tmp_path: Path) -> None:
    fresh_path = tmp_path / "spec.json"
    run_vllm_tool(GENERATOR, str(fresh_path))
    fresh, committed = fresh_path.read_text(encoding="utf-8"), COMMITTED_SPEC.read_text(encoding="utf-8")
    if fresh == committed:
        return
    fresh_spec, committed_spec = json.loads(fresh), json.loads(committed)
    fresh_options, committed_options = fresh_spec["options"], committed_spec["options"]
    changes = [f"added {dest}" for dest in sorted(fresh_options.keys() - committed_options.keys())]
    changes += [f"removed {dest}" for dest in sorted(committed_options.keys() - fresh_options.keys())]
    changes += [
        f"changed {dest}"
        for dest in sorted(fresh_options.keys() & committed_options.keys())
        if fresh_options[dest] != committed_options[dest]
    ]
    changes += [
        f"changed {key}"
        for key in sorted(fresh_spec)
        if key != "options" and fresh_spec[key] != committed_spec.get(key)
    ]
    raise AssertionError(
        f"{COMMITTED_SPEC.relative_to(REPO)} is stale; run `make vllm-spec` and commit it. "
        f"Differences: {', '.join(changes[:20]) or 'formatting only'}"
    )
