"""The demo's pure parts: the trace it replays, the table it shows, the PNG it leaves."""

from __future__ import annotations

import json
from pathlib import Path

from demo.summary import write_summary
from demo.table import model_row, render, tier_rows
from demo.traffic import CHARS_PER_TOKEN, Result, requests_from_trace

REPO = Path(__file__).resolve().parents[2]


def trace(tmp_path: Path) -> Path:
    rows = [
        {"timestamp": 0, "input_length": 2000, "output_length": 50, "hash_ids": [0, 1, 2, 3]},
        {"timestamp": 1500, "input_length": 3000, "output_length": 900, "hash_ids": [0, 1, 2, 3, 4, 5]},
        {"timestamp": 2500, "input_length": 40000, "output_length": 10, "hash_ids": list(range(100, 180))},
        {"timestamp": 9000, "input_length": 100, "output_length": 5, "hash_ids": [7]},
    ]
    path = tmp_path / "trace.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_rows_that_share_blocks_share_a_prompt_prefix(tmp_path: Path) -> None:
    first, second, *_ = requests_from_trace(trace(tmp_path), seconds=10)
    first_text = "".join(m["content"] for m in first.messages)
    second_text = "".join(m["content"] for m in second.messages)
    assert first.messages[0] == second.messages[0]  # hash id 0: the same system prompt
    assert second_text.startswith(first_text[: 3 * 256 * CHARS_PER_TOKEN])


def test_prompts_are_scaled_capped_and_timed(tmp_path: Path) -> None:
    requests = requests_from_trace(trace(tmp_path), seconds=10, speedup=2, max_prompt_tokens=7000)
    assert [r.at_s for r in requests] == [0.0, 0.75, 1.25, 4.5]
    lengths = [len("".join(m["content"] for m in r.messages)) // CHARS_PER_TOKEN for r in requests]
    assert abs(lengths[0] - 1000) <= 2  # half the trace's 2,000 tokens
    assert lengths[2] <= 7000  # 40,000 tokens would not fit the tiers' context
    assert [r.max_tokens for r in requests][:2] == [50, 256]
    assert len(requests_from_trace(trace(tmp_path), seconds=2)) == 2


def model_body(**status: object) -> dict[str, object]:
    return {
        "metadata": {"name": "llama-8b"},
        "spec": {"resources": {"gpu": {"product": "NVIDIA-H100-80GB-HBM3", "count": 1}}},
        "status": {
            "replicas": 2,
            "readyReplicas": 2,
            "maxNumSeqs": {"engine": 256, "effective": 96},
            "utilization": {"batch": 0.62},
            "cost": {"gpuHours": 0.125, "usdPer1MTokens": 0.42},
            "decisions": [{"action": "ScaleUp", "from": 1, "to": 2, "reason": "batch 0.93 > 0.80"}],
            **status,
        },
    }


def result(tier: str, *, escalated: str = "", status: int = 200, latency: float = 1.0) -> Result:
    return Result(0.0, latency, status, tier, "10.244.0.9:8000", escalated, 100, 10)


def test_the_table_shows_each_model_and_each_tiers_share() -> None:
    row = model_row(model_body())
    assert (row.gpus, row.ready, row.cap, row.engine_cap, row.gpu_hours) == ("1xH100", 2, 96, 256, 0.125)
    assert row.last_decision == "ScaleUp 1→2: batch 0.93 > 0.80"
    router = {
        "status": {
            "tiers": [
                {"name": "small", "model": "llama-8b", "readyEndpoints": 2},
                {"name": "large", "model": "llama-70b", "readyEndpoints": 1},
            ]
        }
    }
    results = [
        result("small"),
        result("small"),
        result("large", escalated="small", latency=3.0),
        result("", status=429),
    ]
    small, large = tier_rows(router, results)
    assert (small.requests, round(small.share, 3), small.escalated_in) == (2, 0.667, 0)
    assert (large.requests, large.escalated_in, large.p50_latency_s) == (1, 1, 3.0)
    screen = render([row], [small, large], elapsed_s=30, total_s=120, sent=4, answered=3, failed=1)
    assert "llama-8b" in screen
    assert "96/256" in screen
    assert "ScaleUp 1→2" in screen
    assert "67%" in screen


def test_the_summary_is_a_png(tmp_path: Path) -> None:
    rows = [model_row(model_body())]
    path = write_summary(
        tmp_path / "summary.png", [(0.0, rows), (10.0, rows)], [result("small"), result("large")]
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
