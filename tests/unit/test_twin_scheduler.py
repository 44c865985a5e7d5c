"""The engine's scheduling: batch limits, token budget, paged KV cache, preemption, prefix caching."""

from __future__ import annotations

from typing import Any

import pytest

from thrifty.twin import (
    Engine,
    EngineRequest,
    RequestRejectedError,
    StepOutcome,
    engine_config_from_vllm_args,
    hashes_from_trace_ids,
)

BLOCK = 16


def engine(**args: Any) -> Engine:
    """A Llama-3.2-1B twin on an L4 with a KV cache of `num_gpu_blocks_override` blocks."""
    return Engine(
        engine_config_from_vllm_args(
            {"model": "meta-llama/Llama-3.2-1B-Instruct", "max_model_len": 1024, **args},
            gpu_product="NVIDIA-L4",
        )
    )


def run(twin: Engine, *, check: Any = None, max_steps: int = 100_000) -> tuple[float, list[StepOutcome]]:
    """Step the engine until idle, calling `check(twin, plan)` after every plan."""
    now = 0.0
    outcomes: list[StepOutcome] = []
    for _ in range(max_steps):
        plan = twin.plan_step(now)
        if plan is None:
            return now, outcomes
        if check is not None:
            check(twin, plan)
        now += plan.duration_s
        outcomes.append(twin.finish_step(plan, now))
    raise AssertionError("the engine did not drain")


def referenced_blocks(twin: Engine) -> int:
    return sum(len(request.blocks) for request in twin.running)


def test_never_more_than_max_num_seqs_run() -> None:
    twin = engine(max_num_seqs=4, num_gpu_blocks_override=512)
    for index in range(20):
        twin.add_request(EngineRequest(f"r{index}", 100, 30), 0.0)
    seen: list[int] = []

    def check(twin: Engine, _plan: object) -> None:
        seen.append(twin.num_running)
        assert twin.num_running <= 4

    run(twin, check=check)
    assert max(seen) == 4


def test_kv_usage_never_exceeds_capacity_even_under_pressure() -> None:
    twin = engine(num_gpu_blocks_override=80, enable_prefix_caching=False)
    for index in range(12):
        twin.add_request(EngineRequest(f"r{index}", 200 + 37 * index, 300), 0.0)

    def check(twin: Engine, _plan: object) -> None:
        assert referenced_blocks(twin) <= 80
        assert referenced_blocks(twin) == round(twin.kv_usage * 80)
        assert 0.0 <= twin.kv_usage <= 1.0

    _end, outcomes = run(twin, check=check)
    finished = [request for outcome in outcomes for request in outcome.finished]
    assert sorted(request.output_tokens for request in finished) == [300] * 12
    assert twin.kv_usage == 0.0


def test_decode_without_a_free_block_preempts_the_newest_request() -> None:
    # 64 blocks hold 1024 tokens; three requests growing to 700 tokens each cannot all stay.
    twin = engine(num_gpu_blocks_override=64, enable_prefix_caching=False)
    for name in ("oldest", "middle", "newest"):
        twin.add_request(EngineRequest(name, 300, 400), 0.0)

    _end, outcomes = run(twin)

    finished = {request.request_id: request for outcome in outcomes for request in outcome.finished}
    assert twin.preemptions_total > 0
    assert finished["oldest"].num_preemptions == 0
    assert finished["newest"].num_preemptions > 0
    assert all(request.output_tokens == 400 for request in finished.values())
    assert sum(outcome.num_preempted for outcome in outcomes) == twin.preemptions_total


def test_preempted_request_is_recomputed_with_its_generated_tokens() -> None:
    twin = engine(num_gpu_blocks_override=64, enable_prefix_caching=False)
    twin.add_request(EngineRequest("oldest", 300, 400), 0.0)
    newest = twin.add_request(EngineRequest("newest", 300, 400), 0.0)
    twin.add_request(EngineRequest("third", 300, 400), 0.0)
    recompute_sizes: list[int] = []

    def check(_twin: Engine, plan: Any) -> None:
        for request, count in plan.scheduled:
            if request is newest and request.num_computed == 0 and request.num_preemptions:
                recompute_sizes.append(count)

    run(twin, check=check)
    assert recompute_sizes
    assert all(size > 300 for size in recompute_sizes)  # prompt plus the tokens it had generated


def test_repeated_prefix_hits_the_cache() -> None:
    twin = engine(num_gpu_blocks_override=256)
    shared = hashes_from_trace_ids([7, 8], 1000, trace_block_tokens=512)
    twin.add_request(EngineRequest("first", 1000, 5, shared), 0.0)
    now, _ = run(twin)
    second = twin.add_request(EngineRequest("second", 1000, 5, shared), now)

    run(twin)

    assert second.cached_tokens == (1000 - 1) // BLOCK * BLOCK
    assert twin.prefix_hits_total == second.cached_tokens
    assert twin.prefix_queries_total == 2000


def test_prefix_cache_hit_shortens_time_to_first_token() -> None:
    twin = engine(num_gpu_blocks_override=256)
    shared = hashes_from_trace_ids([1, 2], 1000, trace_block_tokens=512)
    first = twin.add_request(EngineRequest("first", 1000, 2, shared), 0.0)
    now, _ = run(twin)
    second = twin.add_request(EngineRequest("second", 1000, 2, shared), now)
    run(twin)

    assert first.first_token_s is not None
    assert second.first_token_s is not None
    assert second.first_token_s - second.arrival_s < 0.5 * (first.first_token_s - first.arrival_s)


def test_different_prefixes_do_not_hit() -> None:
    twin = engine(num_gpu_blocks_override=256)
    twin.add_request(EngineRequest("a", 600, 3, hashes_from_trace_ids([1, 2], 600)), 0.0)
    now, _ = run(twin)
    other = twin.add_request(EngineRequest("b", 600, 3, hashes_from_trace_ids([3, 2], 600)), now)
    run(twin)

    assert other.cached_tokens == 0


def test_cached_blocks_are_evicted_least_recently_freed_first() -> None:
    # 64 blocks. "old" and "new" each leave 20 freed blocks (19 full ones cached). "big" needs 44
    # fresh blocks: the 24 never used, then the 20 that "old" freed first; "new" keeps its prefix.
    twin = engine(num_gpu_blocks_override=64)
    old = hashes_from_trace_ids([11], 310, trace_block_tokens=512)
    new = hashes_from_trace_ids([22], 310, trace_block_tokens=512)
    now = 0.0
    for name, hashes in (("old", old), ("new", new)):
        twin.add_request(EngineRequest(name, 310, 1, hashes), now)
        now, _ = run(twin)
    twin.add_request(EngineRequest("big", 700, 1), now)
    now, _ = run(twin)

    assert twin.cached_prefix_tokens(new) == 19 * BLOCK
    assert twin.cached_prefix_tokens(old) == 0


def test_chunked_prefill_respects_max_num_batched_tokens() -> None:
    twin = engine(max_num_batched_tokens=256, max_num_seqs=8, num_gpu_blocks_override=256)
    long = twin.add_request(EngineRequest("long", 1000, 4), 0.0)
    plans: list[int] = []
    chunks: list[int] = []

    def check(_twin: Engine, plan: Any) -> None:
        plans.append(plan.num_tokens)
        chunks.extend(
            count for request, count in plan.scheduled if request is long and request.output_tokens == 0
        )

    run(twin, check=check)
    assert max(plans) <= 256
    assert chunks == [256, 256, 256, 232]


def test_decodes_are_scheduled_before_new_prefill_chunks() -> None:
    twin = engine(max_num_batched_tokens=256, num_gpu_blocks_override=256)
    early = twin.add_request(EngineRequest("early", 50, 20), 0.0)
    plan = twin.plan_step(0.0)
    assert plan is not None
    twin.finish_step(plan, plan.duration_s)
    twin.add_request(EngineRequest("late", 900, 5), plan.duration_s)

    second = twin.plan_step(plan.duration_s)

    assert second is not None
    assert second.scheduled[0] == (early, 1)
    assert second.scheduled[1][1] == 255


def test_without_chunked_prefill_a_prompt_is_prefilled_in_one_step() -> None:
    twin = engine(enable_chunked_prefill=False, num_gpu_blocks_override=256)
    twin.add_request(EngineRequest("whole", 1000, 3), 0.0)

    plan = twin.plan_step(0.0)

    assert plan is not None
    assert plan.scheduled[0][1] == 1000


def test_requests_longer_than_max_model_len_are_rejected() -> None:
    twin = engine(num_gpu_blocks_override=256)

    with pytest.raises(RequestRejectedError, match="maximum context length is 1024 tokens"):
        twin.add_request(EngineRequest("too-long", 1000, 100), 0.0)


def test_abort_frees_the_requests_blocks() -> None:
    twin = engine(num_gpu_blocks_override=256, enable_prefix_caching=False)
    twin.add_request(EngineRequest("doomed", 500, 100), 0.0)
    plan = twin.plan_step(0.0)
    assert plan is not None
    assert twin.kv_usage > 0

    aborted = twin.abort("doomed", 0.001)
    outcome = twin.finish_step(plan, plan.duration_s)

    assert aborted is not None
    assert aborted.finish_reason == "abort"
    assert twin.kv_usage == 0.0
    assert not outcome.emitted
    assert not twin.has_work


def test_speculative_decoding_emits_accepted_tokens_per_step() -> None:
    spec = {"method": "ngram", "num_speculative_tokens": 3}
    plain = engine(num_gpu_blocks_override=256)
    speculative = Engine(
        engine_config_from_vllm_args(
            {
                "model": "meta-llama/Llama-3.2-1B-Instruct",
                "max_model_len": 1024,
                "num_gpu_blocks_override": 256,
                "speculative_config": spec,
            },
            gpu_product="NVIDIA-L4",
            spec_token_acceptance_rate=0.7,
        )
    )
    for twin in (plain, speculative):
        twin.add_request(EngineRequest("r", 100, 200), 0.0)

    plain_steps = len(run(plain)[1])
    speculative_steps = len(run(speculative)[1])

    # 1 + 0.7 + 0.49 + 0.343 = 2.53 tokens per decode step.
    assert speculative_steps == pytest.approx(plain_steps / 2.53, rel=0.05)


def test_max_output_tokens_are_generated_exactly() -> None:
    twin = engine(num_gpu_blocks_override=256)
    request = twin.add_request(EngineRequest("r", 64, 37), 0.0)

    _end, outcomes = run(twin)

    assert request.output_tokens == 37
    assert sum(outcome.num_generation_tokens for outcome in outcomes) == 37
    assert request.finish_reason == "length"


def test_without_prefix_caching_the_schedule_is_the_cached_pools_schedule_without_hits() -> None:
    """The engine without prefix caching keeps its free blocks on a plain stack; prompts that share
    no prefix must run exactly as on the ref-counted LRU pool (without preemptions: a preempted
    request would find its own blocks by hash there)."""

    def timeline(caching: bool) -> list[tuple[float, int, float]]:
        twin = engine(max_num_seqs=8, num_gpu_blocks_override=400, enable_prefix_caching=caching)
        for index in range(24):
            twin.add_request(EngineRequest(f"r{index}", 120 + 23 * index, 40 + 7 * index), 0.01 * index)
        usage: list[float] = []
        _end, outcomes = run(twin, check=lambda twin, _plan: usage.append(twin.kv_usage))
        assert twin.kv_usage == 0.0
        return [(o.end_s, o.num_scheduled_tokens, u) for o, u in zip(outcomes, usage, strict=True)]

    cached, plain = timeline(True), timeline(False)
    assert len(plain) > 100
    assert max(u for _end, _tokens, u in plain) > 0.2
    assert plain == cached
