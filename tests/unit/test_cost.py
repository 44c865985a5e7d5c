"""The cost arithmetic (thrifty.control.cost): GPU-hours integrated between samples, carried across a
restart, written to status rarely; dollars per million generated tokens from a window."""

from __future__ import annotations

import pytest

from thrifty.control import MetricsWindow, ReplicaSample
from thrifty.control.cost import (
    GPU_HOURS_WRITE_INTERVAL_S,
    GpuHoursAccount,
    accrue,
    gpu_hours_for_status,
    gpu_hours_write_due,
    resume_account,
    rounded_usd,
    usd_moved,
    usd_per_million_generated_tokens,
)

T0 = 1_800_000_000.0


def test_the_gpus_seen_at_a_sample_are_charged_until_the_next() -> None:
    account = GpuHoursAccount(gpu_hours=0.0, as_of=T0, gpus=4)

    account, added = accrue(account, gpus=8, now=T0 + 1800)
    assert added == pytest.approx(2.0)  # 4 GPUs for half an hour
    assert (account.gpu_hours, account.as_of, account.gpus) == (pytest.approx(2.0), T0 + 1800, 8)

    account, added = accrue(account, gpus=0, now=T0 + 3600)
    assert added == pytest.approx(4.0)  # 8 GPUs for the next half hour
    account, added = accrue(account, gpus=0, now=T0 + 7200)
    assert added == 0.0
    assert account.gpu_hours == pytest.approx(6.0)


def test_a_clock_that_steps_back_adds_nothing_and_keeps_the_mark() -> None:
    account = GpuHoursAccount(gpu_hours=3.0, as_of=T0, gpus=2)

    account, added = accrue(account, gpus=6, now=T0 - 30)

    assert added == 0.0
    assert (account.gpu_hours, account.as_of, account.gpus) == (3.0, T0, 6)


def test_a_restart_charges_the_time_away_at_the_gpus_found_held() -> None:
    account, added = resume_account(stored_gpu_hours=10.0, stored_as_of=T0, gpus=2, now=T0 + 900)

    assert added == pytest.approx(0.5)
    assert account == GpuHoursAccount(gpu_hours=pytest.approx(10.5), as_of=T0 + 900, gpus=2)


def test_a_model_with_nothing_stored_starts_at_zero_now() -> None:
    account, added = resume_account(stored_gpu_hours=None, stored_as_of=None, gpus=4, now=T0)

    assert (account, added) == (GpuHoursAccount(gpu_hours=0.0, as_of=T0, gpus=4), 0.0)


def test_resuming_then_accruing_loses_nothing_and_counts_nothing_twice() -> None:
    """Two processes, one stopped after storing its total half-way: the same sum as one process."""
    one, _ = resume_account(stored_gpu_hours=None, stored_as_of=None, gpus=4, now=T0)
    one, _ = accrue(one, gpus=4, now=T0 + 3600)
    one, _ = accrue(one, gpus=4, now=T0 + 7200)

    first, _ = resume_account(stored_gpu_hours=None, stored_as_of=None, gpus=4, now=T0)
    first, _ = accrue(first, gpus=4, now=T0 + 1800)  # stored here, then the process stops
    second, _ = resume_account(
        stored_gpu_hours=gpu_hours_for_status(first), stored_as_of=first.as_of, gpus=4, now=T0 + 3600
    )
    second, _ = accrue(second, gpus=4, now=T0 + 7200)

    assert second.gpu_hours == pytest.approx(one.gpu_hours) == pytest.approx(8.0)


def test_status_gets_a_first_total_at_once() -> None:
    account = GpuHoursAccount(gpu_hours=0.0, as_of=T0, gpus=0)

    assert gpu_hours_write_due(stored_gpu_hours=None, stored_as_of=None, account=account)


def test_status_gets_a_moved_total_only_once_the_stored_one_is_five_minutes_old() -> None:
    stored = GpuHoursAccount(gpu_hours=1.0, as_of=T0, gpus=4)
    soon, _ = accrue(stored, gpus=4, now=T0 + GPU_HOURS_WRITE_INTERVAL_S - 1)
    later, _ = accrue(stored, gpus=4, now=T0 + GPU_HOURS_WRITE_INTERVAL_S)

    assert not gpu_hours_write_due(stored_gpu_hours=1.0, stored_as_of=T0, account=soon)
    assert gpu_hours_write_due(stored_gpu_hours=1.0, stored_as_of=T0, account=later)


def test_a_total_that_did_not_move_is_never_rewritten() -> None:
    idle, _ = accrue(GpuHoursAccount(gpu_hours=1.0, as_of=T0, gpus=0), gpus=0, now=T0 + 86_400)

    assert not gpu_hours_write_due(stored_gpu_hours=1.0, stored_as_of=T0, account=idle)


def test_status_keeps_gpu_hours_to_a_ten_thousandth() -> None:
    assert gpu_hours_for_status(GpuHoursAccount(gpu_hours=1.23456789, as_of=T0, gpus=1)) == 1.2346


def window(*, pods_per_step: list[int], tokens_per_s: list[float]) -> MetricsWindow:
    samples = tuple(
        ReplicaSample(pod=f"pod-{p}", time=T0 + 15 * step, running=1, waiting=0, kv_cache_usage=0.1)
        for step, count in enumerate(pods_per_step)
        for p in range(count)
    )
    tokens = tuple((T0 + 15 * step, rate) for step, rate in enumerate(tokens_per_s))
    return MetricsWindow(
        start=T0 - 15, end=T0 + 15 * len(pods_per_step), samples=samples, generated_tokens_per_s=tokens
    )


def test_dollars_per_million_tokens_are_the_window_gpu_cost_over_its_tokens() -> None:
    # Two replicas of 4 GPUs at $2.50 a GPU-hour: $20 an hour, $1/180 a second. At 1000 tokens/s,
    # a million tokens take 1000 s: $5.56.
    busy = window(pods_per_step=[2, 2, 2, 2], tokens_per_s=[1000, 1000, 1000, 1000])

    usd = usd_per_million_generated_tokens(busy, gpus_per_replica=4, gpu_hourly_usd=2.5)

    assert usd == pytest.approx(20 / 3600 * 1000)


def cost(w: MetricsWindow) -> float:
    usd = usd_per_million_generated_tokens(w, gpus_per_replica=1, gpu_hourly_usd=1.0)
    assert usd is not None
    return usd


def test_a_burst_then_idle_costs_what_the_same_tokens_cost_spread_evenly() -> None:
    steady = window(pods_per_step=[2, 2, 2, 2], tokens_per_s=[1000, 1000, 1000, 1000])
    burst_then_idle = window(pods_per_step=[2, 2, 2, 2], tokens_per_s=[2000, 2000, 0, 0])

    assert cost(burst_then_idle) == pytest.approx(cost(steady))


def test_replicas_added_without_more_tokens_make_tokens_dearer() -> None:
    steady = window(pods_per_step=[2, 2, 2, 2], tokens_per_s=[1000, 1000, 1000, 1000])
    scaled_out_idle = window(pods_per_step=[2, 2, 4, 4], tokens_per_s=[1000, 1000, 1000, 1000])

    assert cost(scaled_out_idle) == pytest.approx(1.5 * cost(steady))


@pytest.mark.parametrize(
    ("price", "tokens"),
    [(None, [1000.0, 1000.0]), (2.5, [0.0, 0.0]), (2.5, [])],
    ids=["no price", "no traffic", "no token series"],
)
def test_no_price_or_no_traffic_leaves_the_cost_per_token_unset(
    price: float | None, tokens: list[float]
) -> None:
    idle = window(pods_per_step=[1, 1], tokens_per_s=tokens)

    assert usd_per_million_generated_tokens(idle, gpus_per_replica=1, gpu_hourly_usd=price) is None


def test_a_free_gpu_gives_free_tokens_rather_than_no_figure() -> None:
    busy = window(pods_per_step=[1], tokens_per_s=[500])

    assert usd_per_million_generated_tokens(busy, gpus_per_replica=1, gpu_hourly_usd=0.0) == 0.0


def test_status_shows_three_significant_digits() -> None:
    assert [rounded_usd(v) for v in (5.5555, 0.0123456, 1234.5, 0.0)] == [5.56, 0.0123, 1230.0, 0.0]


@pytest.mark.parametrize(
    ("stored", "value", "moved"),
    [
        (None, None, False),
        (None, 1.0, True),
        (1.0, None, True),
        (1.0, 1.04, False),
        (1.0, 0.96, False),
        (1.0, 1.05, True),
        (1.0, 0.9, True),
        (0.0, 0.0, False),
        (0.0, 0.1, True),
    ],
)
def test_the_price_per_token_is_rewritten_only_when_set_unset_or_moved_five_percent(
    stored: float | None, value: float | None, moved: bool
) -> None:
    assert usd_moved(stored, value) is moved
