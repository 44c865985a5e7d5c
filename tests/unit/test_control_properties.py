"""Properties of the policy over many generated windows and states (a seeded loop, no extra library).

Each case draws a fleet, its load history (steady, rising, falling or bursty), queueing, KV usage,
preemptions, latency and slow-gap shares, sometimes missing or stale data, and a state with recent
actions; the properties must hold for every one of them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from test_control_windows import NOW, POLICY, STEP

from thrifty.control import (
    Action,
    Decision,
    LatencySample,
    MetricsWindow,
    ReplicaSample,
    ScalingPolicy,
    ScalingState,
    decide,
)

CASES = 400


@dataclass(frozen=True)
class Case:
    window: MetricsWindow
    state: ScalingState
    policy: ScalingPolicy
    data_missing: bool
    """The window is empty, stale, failing, or misses a ready replica."""


def _window(rng: random.Random, pods: int, *, stale: bool) -> MetricsWindow:
    span = rng.choice([120.0, 600.0, 1800.0])
    end = NOW - (POLICY.stale_after_s + rng.uniform(1, 600) if stale else rng.uniform(0, 20))
    times = [end - STEP * k for k in range(int(span / STEP))][::-1]
    shape = rng.choice(["steady", "rising", "falling", "bursty"])
    base = rng.uniform(0, 120)
    samples = []
    latency = []
    for position, time in enumerate(times):
        progress = position / max(1, len(times) - 1)
        level = {
            "steady": base,
            "rising": base * (0.3 + progress),
            "falling": base * (1.3 - progress),
            "bursty": base * (3.0 if rng.random() < 0.1 else 1.0),
        }[shape]
        for index in range(pods):
            running = max(0.0, rng.gauss(level, level * 0.1 + 0.1))
            samples.append(
                ReplicaSample(
                    pod=f"pod-{index}",
                    time=time,
                    running=running,
                    waiting=max(0.0, rng.gauss(0, 5)) if rng.random() < 0.3 else 0.0,
                    kv_cache_usage=min(1.0, rng.uniform(0, 1) * (0.2 + level / 150)),
                    preemptions=float(rng.randint(1, 5)) if rng.random() < 0.02 else 0.0,
                    finished_per_s=rng.uniform(0, 20) if rng.random() < 0.9 else None,
                )
            )
        load = level / 60
        latency.append(
            LatencySample(
                time,
                rng.uniform(0.05, 4.0) if rng.random() < 0.95 else None,
                rng.uniform(0.005, 0.03) + 0.03 * load,
                min(1.0, 0.03 * load**1.5) if rng.random() < 0.9 else None,
            )
        )
    return MetricsWindow(start=NOW - span, end=NOW, samples=tuple(samples), latency=tuple(latency))


def _case(rng: random.Random) -> Case:
    policy = replace(
        POLICY,
        min_replicas=rng.randint(1, 4),
        max_replicas=rng.randint(4, 20),
        cap_enforced_by_router=rng.random() < 0.8,
        tune_max_num_seqs=rng.random() < 0.9,
    )
    replicas = rng.randint(policy.min_replicas, policy.max_replicas)
    ready = replicas if rng.random() < 0.8 else rng.randint(0, replicas)
    kind = rng.choice(["fresh"] * 6 + ["empty", "stale", "error", "silent"])
    pods = max(1, ready)
    if kind == "empty":
        window = MetricsWindow(start=NOW - 1800, end=NOW)
    else:
        window = _window(rng, pods, stale=kind == "stale")
    if kind == "error":
        window = replace(window, errors=("running from http://prometheus:9090: Timeout: read timed out",))
    if kind == "silent":
        ready = pods + rng.randint(1, 3)
        replicas = max(replicas, ready)
        policy = replace(policy, max_replicas=max(policy.max_replicas, replicas))
    engine = rng.choice([64, 128, 256, 512])

    def recent() -> float | None:
        return NOW - rng.uniform(0, 1200) if rng.random() < 0.5 else None

    state = ScalingState(
        replicas=replicas,
        ready_replicas=ready,
        engine_max_num_seqs=engine,
        effective_cap=rng.randint(policy.max_num_seqs_min, engine)
        if policy.cap_enforced_by_router
        else engine,
        last_scale_up=recent(),
        last_scale_down=recent(),
        last_rollout=recent(),
        last_cap_change=recent(),
        rollout_in_progress=rng.random() < 0.1,
    )
    return Case(window, state, policy, data_missing=kind != "fresh")


def _cases() -> list[tuple[Case, Decision]]:
    rng = random.Random(20261127)
    cases = [_case(rng) for _ in range(CASES)]
    return [(case, decide(case.window, case.state, case.policy, NOW)) for case in cases]


CASES_AND_DECISIONS = _cases()


def test_generated_cases_cover_every_kind_of_decision() -> None:
    actions = {decision.action for _, decision in CASES_AND_DECISIONS}

    assert {Action.HOLD, Action.STEADY, Action.SCALE_UP, Action.SCALE_DOWN} <= actions
    assert actions & {Action.RAISE_CAP, Action.LOWER_CAP, Action.ROLL_MAX_NUM_SEQS}


def test_replicas_always_stay_within_the_bounds() -> None:
    for case, decision in CASES_AND_DECISIONS:
        assert case.policy.min_replicas <= decision.replicas <= case.policy.max_replicas, case


def test_missing_or_stale_data_never_scales_down_and_always_says_so() -> None:
    for case, decision in CASES_AND_DECISIONS:
        if case.data_missing:
            assert decision.action is Action.HOLD, decision
            assert not decision.metrics_available
            assert decision.reason.startswith("holding: ")
            assert decision.replicas == case.state.replicas
            assert decision.effective_cap == min(case.state.effective_cap, case.state.engine_max_num_seqs)
            assert decision.engine_max_num_seqs == case.state.engine_max_num_seqs


def test_cooldowns_are_honoured() -> None:
    for case, decision in CASES_AND_DECISIONS:
        state, policy = case.state, case.policy
        if state.last_scale_up is not None and NOW - state.last_scale_up < policy.scale_up_cooldown_s:
            assert decision.replicas <= state.replicas, case
        changed = state.last_replica_change
        if changed is not None and NOW - changed < policy.scale_down_cooldown_s:
            assert decision.replicas >= state.replicas, case
        if state.last_rollout is not None and NOW - state.last_rollout < policy.rollout_cooldown_s:
            assert decision.engine_max_num_seqs == state.engine_max_num_seqs, case
        if state.rollout_in_progress:
            assert decision.engine_max_num_seqs == state.engine_max_num_seqs, case


def test_steps_are_limited() -> None:
    for case, decision in CASES_AND_DECISIONS:
        state, policy = case.state, case.policy
        up = max(int(state.replicas * (policy.scale_up_max_factor - 1) + 0.999), policy.scale_up_max_pods)
        down = max(1, int(state.replicas * policy.scale_down_max_share))
        assert decision.replicas <= state.replicas + up
        assert decision.replicas >= state.replicas - down


def test_the_cap_never_exceeds_the_engine_flag_or_leaves_the_tuning_range() -> None:
    for case, decision in CASES_AND_DECISIONS:
        assert decision.effective_cap <= decision.engine_max_num_seqs
        if not case.policy.cap_enforced_by_router:
            assert decision.effective_cap == decision.engine_max_num_seqs
        if not case.policy.tune_max_num_seqs:
            assert decision.engine_max_num_seqs == case.state.engine_max_num_seqs


def test_a_replayed_window_gives_the_same_decision() -> None:
    for case, decision in CASES_AND_DECISIONS:
        assert decide(case.window, case.state, case.policy, NOW) == decision


def test_every_change_is_explained() -> None:
    for _, decision in CASES_AND_DECISIONS:
        assert decision.reason
        for change in decision.changes:
            assert change.before != change.after
            assert change.reason
