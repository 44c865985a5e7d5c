"""What serving a model costs: GPU-hours held, and dollars per million generated tokens. Pure.

GPU-hours integrate over time the GPUs that a model's Running pods hold. The operator samples
that count whenever it reconciles the model (each resync, each event of its Deployment) and
charges the count seen at one sample until the next: a change in between is not seen any sooner
either way, and an error stays within one resync period.

The running total lives in the operator's memory (`GpuHoursAccount`) and is copied into status
now and then (`gpu_hours_write_due`) together with the instant it is accurate to. An operator
that restarts goes on from that instant and charges the time in between at the GPUs it finds held
(pods keep running, and costing, while the operator is away): nothing is lost, nothing counted
twice.

    account, added = resume_account(stored_gpu_hours=12.0, stored_as_of=t0, gpus=4, now=t1)
    account, added = accrue(account, gpus=8, now=t2)      # charges 4 GPUs for t2 - t1
    usd_per_million_generated_tokens(window, gpus_per_replica=4, gpu_hourly_usd=2.5)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from thrifty.control.window import MetricsWindow

SECONDS_PER_HOUR = 3600.0

GPU_HOURS_WRITE_INTERVAL_S = 300.0
"""Status gets the new total at most this often, unless it is written anyway. Status is for
people and for restarts, and both are served by a figure minutes old: writing it at every resync
would turn each resync of each model into a write (and a watch event for every client), while
five minutes keeps one write per model in that time and bounds what a restart has to estimate."""

GPU_HOURS_DECIMALS = 4
"""Status keeps GPU-hours to 0.0001 h (a third of a GPU-second): finer would only be noise."""

USD_SIGNIFICANT_DIGITS = 3
USD_CHANGE_TO_REPORT = 0.05
"""The price per token is rewritten in status only when it moved by 5% or more: it wobbles with
every scrape under load, and a status write per control step for a wobble helps nobody."""


@dataclass(frozen=True, slots=True)
class GpuHoursAccount:
    """A model's GPU-hours as of one sample."""

    gpu_hours: float
    """Total since the model was created, up to `as_of`."""
    as_of: float
    """When the total was brought up to date, in seconds since the epoch."""
    gpus: int
    """GPUs held at `as_of`: what the time until the next sample is charged at."""


def resume_account(
    *, stored_gpu_hours: float | None, stored_as_of: float | None, gpus: int, now: float
) -> tuple[GpuHoursAccount, float]:
    """The account of a model the operator has not seen since it started, and the GPU-hours added.

    From the stored total, the time since `stored_as_of` is charged at the `gpus` held now. A model
    with nothing stored (new, or from before cost was reported) starts at zero now.
    """
    if stored_gpu_hours is None or stored_as_of is None:
        return GpuHoursAccount(gpu_hours=stored_gpu_hours or 0.0, as_of=now, gpus=gpus), 0.0
    added = gpus * max(0.0, now - stored_as_of) / SECONDS_PER_HOUR
    return GpuHoursAccount(gpu_hours=stored_gpu_hours + added, as_of=max(now, stored_as_of), gpus=gpus), added


def accrue(account: GpuHoursAccount, *, gpus: int, now: float) -> tuple[GpuHoursAccount, float]:
    """The account brought up to `now`, with `gpus` held from now on, and the GPU-hours added.

    The time since the last sample is charged at the GPUs held then. A clock that stepped back
    adds nothing (and never subtracts).
    """
    elapsed = now - account.as_of
    if elapsed <= 0:
        return GpuHoursAccount(gpu_hours=account.gpu_hours, as_of=account.as_of, gpus=gpus), 0.0
    added = account.gpus * elapsed / SECONDS_PER_HOUR
    return GpuHoursAccount(gpu_hours=account.gpu_hours + added, as_of=now, gpus=gpus), added


def gpu_hours_for_status(account: GpuHoursAccount) -> float:
    """The total as status stores it."""
    return round(account.gpu_hours, GPU_HOURS_DECIMALS)


def gpu_hours_write_due(
    *,
    stored_gpu_hours: float | None,
    stored_as_of: float | None,
    account: GpuHoursAccount,
    interval_s: float = GPU_HOURS_WRITE_INTERVAL_S,
) -> bool:
    """Whether status should get the account's total now, though nothing else in it changed.

    Yes when status has no total yet; otherwise only when the stored one is `interval_s` old and
    the total moved (a model that holds no GPU is not rewritten every five minutes for nothing).
    """
    if stored_gpu_hours is None or stored_as_of is None:
        return True
    if gpu_hours_for_status(account) == stored_gpu_hours:
        return False
    return account.as_of - stored_as_of >= interval_s


def usd_per_million_generated_tokens(
    window: MetricsWindow, *, gpus_per_replica: int, gpu_hourly_usd: float | None
) -> float | None:
    """Dollars per million generated tokens over the window, or None without a price or traffic.

    The GPU-hours are those of the replicas that reported at each step of the window, so idle
    replicas make tokens dearer, as they do on the bill; the tokens are the model's generation
    rate at the same steps. Both are means over the steps, whose ratio is that of the totals.
    Replicas still loading report nothing yet and are not in it (status.cost.gpuHours counts them).
    """
    if gpu_hourly_usd is None or not window.generated_tokens_per_s or not window.samples:
        return None
    rates = [rate for _, rate in window.generated_tokens_per_s]
    tokens_per_s = sum(rates) / len(rates)
    if tokens_per_s <= 0 or not math.isfinite(tokens_per_s):
        return None
    replicas = len(window.samples) / len({sample.time for sample in window.samples})
    dollars_per_s = gpu_hourly_usd * replicas * gpus_per_replica / SECONDS_PER_HOUR
    return dollars_per_s / tokens_per_s * 1e6


def rounded_usd(value: float) -> float:
    """`value` to three significant digits, as status shows it."""
    if value == 0:
        return 0.0
    return round(value, USD_SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(abs(value))))


def usd_moved(stored: float | None, value: float | None) -> bool:
    """Whether the price per token changed enough to rewrite it: set, unset, or moved 5%."""
    if stored is None or value is None:
        return stored != value
    if stored == 0:
        return value != 0
    return abs(value - stored) / stored >= USD_CHANGE_TO_REPORT
