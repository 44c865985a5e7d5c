"""The fast-forward driver: deterministic replays, dispatch, loading and retiring twins, traces."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from thrifty.twin import (
    EngineConfig,
    ReplayResult,
    SimTwin,
    Simulation,
    TraceRequest,
    engine_config_from_vllm_args,
    hashes_from_trace_ids,
    load_azure_trace,
    load_mooncake_trace,
    replay,
    size_server,
)

H100 = "NVIDIA-H100-80GB-HBM3"


def config(**args: object) -> EngineConfig:
    return engine_config_from_vllm_args(
        {"model": "meta-llama/Llama-3.1-8B-Instruct", "max_model_len": 16384, **args}, gpu_product=H100
    )


def synthetic_trace(count: int = 300) -> list[TraceRequest]:
    """Bursty arrivals, mixed lengths, a few shared conversation prefixes."""
    requests = []
    for index in range(count):
        prompt = 200 + (index * 377) % 3000
        conversation = index % 7
        hashes = hashes_from_trace_ids([conversation, index], prompt) if conversation < 3 else ()
        requests.append(
            TraceRequest(
                arrival_s=(index // 10) * 0.4 + (index % 10) * 0.003,
                prompt_tokens=prompt,
                output_tokens=5 + (index * 53) % 400,
                block_hashes=hashes,
            )
        )
    return requests


def comparable(result: ReplayResult) -> list[tuple[object, ...]]:
    return [
        (r.request_id, r.twin_id, r.ttft_s, r.itl_s, r.e2e_s, r.cached_tokens, r.num_preemptions)
        for r in result.requests
    ]


def test_replay_is_deterministic() -> None:
    trace = synthetic_trace()

    first = replay(trace, [config(), config()])
    second = replay(trace, [config(), config()])

    assert comparable(first) == comparable(second)
    assert first.twins[0].kv_usage == second.twins[0].kv_usage
    assert all(r.e2e_s is not None for r in first.requests)


def test_decode_runs_give_the_same_results_as_single_steps() -> None:
    trace = synthetic_trace(120)
    tight = config(num_gpu_blocks_override=1100, max_num_seqs=16)  # preemptions and a full batch

    fast = replay(trace, [tight], decode_runs=True)
    slow = replay(trace, [tight], decode_runs=False)

    assert sum(r.num_preemptions for r in slow.requests) > 0
    for a, b in zip(fast.requests, slow.requests, strict=True):
        assert (a.request_id, a.cached_tokens, a.num_preemptions) == (
            b.request_id,
            b.cached_tokens,
            b.num_preemptions,
        )
        assert a.ttft_s == pytest.approx(b.ttft_s, abs=1e-9)
        assert a.e2e_s == pytest.approx(b.e2e_s, abs=1e-9)
    assert fast.itl_tokens.total == slow.itl_tokens.total
    assert fast.itl_tokens.percentile(95) == pytest.approx(slow.itl_tokens.percentile(95), rel=0.02)


def test_results_hold_latencies_and_series_hold_twin_state() -> None:
    result = replay(synthetic_trace(), [config(max_num_seqs=8)], sample_interval_s=0.5)

    served = result.served()
    assert len(served) == 300
    assert all(0 < r.ttft_s <= r.e2e_s for r in served if r.ttft_s is not None and r.e2e_s is not None)
    assert all(r.itl_s is None or r.itl_s > 0 for r in served)
    series = result.twins[0]
    assert max(series.running) == 8
    assert max(series.waiting) > 0
    assert series.times[1] - series.times[0] == 0.5
    assert result.gpu_hours() == pytest.approx(result.end_s / 3600)
    assert result.ttft_percentile(50) <= result.ttft_percentile(95)


def test_shared_prefixes_hit_the_cache_in_a_replay() -> None:
    result = replay(synthetic_trace(), [config()])

    assert sum(r.cached_tokens for r in result.requests) > 0


def test_round_robin_spreads_requests_evenly() -> None:
    result = replay(synthetic_trace(90), [config(), config(), config()])

    counts = [sum(1 for r in result.requests if r.twin_id == twin) for twin in range(3)]
    assert counts == [30, 30, 30]


def test_custom_dispatch_sees_ready_twins_and_picks_one() -> None:
    seen: list[int] = []

    def least_running(_request: TraceRequest, twins: Sequence[SimTwin]) -> int:
        seen.append(len(twins))
        loads = [twin.engine.num_running + twin.engine.num_waiting for twin in twins]
        return loads.index(min(loads))

    result = replay(synthetic_trace(60), [config(), config()], dispatch=least_running)

    assert set(seen) == {2}
    assert {r.twin_id for r in result.requests} == {0, 1}


def test_twin_added_cold_serves_only_after_its_load_time() -> None:
    simulation = Simulation()
    twin_config = config()
    simulation.add_twin(twin_config, at=0.0)
    simulation.submit(TraceRequest(arrival_s=1.0, prompt_tokens=100, output_tokens=10))

    result = simulation.finish()

    load = size_server(twin_config).load_seconds
    assert result.twins[0].ready_s == pytest.approx(load)
    assert result.requests[0].ttft_s is not None
    assert result.requests[0].ttft_s > load - 1.0


def test_retired_twin_drains_and_stops_costing() -> None:
    simulation = Simulation()
    simulation.add_twin(config(), preloaded=True)
    simulation.add_twin(config(), preloaded=True)
    for index in range(10):
        simulation.submit(TraceRequest(arrival_s=index * 0.1, prompt_tokens=500, output_tokens=50))
    simulation.retire_twin(1)
    for index in range(10, 20):
        simulation.submit(TraceRequest(arrival_s=100 + index * 0.1, prompt_tokens=500, output_tokens=50))

    result = simulation.finish()

    assert all(r.twin_id == 0 for r in result.requests[10:])
    stopped = result.twins[1].stopped_s
    assert stopped is not None
    assert stopped < 100
    assert result.twins[1].gpu_seconds(result.end_s) < result.twins[0].gpu_seconds(result.end_s)


def test_too_long_requests_are_rejected_not_dropped() -> None:
    trace = [TraceRequest(0.0, 16000, 1000), TraceRequest(0.1, 100, 10)]

    result = replay(trace, [config()])

    assert result.requests[0].rejected is not None
    assert "maximum context length" in result.requests[0].rejected
    assert result.requests[1].e2e_s is not None


def test_submitting_out_of_order_is_refused() -> None:
    simulation = Simulation()
    simulation.add_twin(config(), preloaded=True)
    simulation.submit(TraceRequest(5.0, 100, 10))

    with pytest.raises(ValueError, match="submit requests in arrival order"):
        simulation.submit(TraceRequest(1.0, 100, 10))


def test_azure_trace_reader(tmp_path: Path) -> None:
    path = tmp_path / "azure.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.9951690,396,109\n"
        "2023-11-16 18:16:50.0000000,10,0\n"
    )

    requests = load_azure_trace(path, duration_s=60)

    assert [(r.prompt_tokens, r.output_tokens) for r in requests] == [(374, 44), (396, 109)]
    assert requests[1].arrival_s == pytest.approx(4.314579)


def test_mooncake_trace_reader_maps_512_token_ids_to_kv_blocks(tmp_path: Path) -> None:
    path = tmp_path / "mooncake.jsonl"
    rows = [
        {"timestamp": 0, "input_length": 1100, "output_length": 5, "hash_ids": [0, 1, 2]},
        {"timestamp": 1500, "input_length": 600, "output_length": 3, "hash_ids": [0, 9]},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))

    first, second = load_mooncake_trace(path)

    assert second.arrival_s == 1.5
    assert len(first.block_hashes) == 1100 // 16
    assert len(second.block_hashes) == 600 // 16
    assert first.block_hashes[:32] == second.block_hashes[:32]
    assert first.block_hashes[32] != second.block_hashes[32]
