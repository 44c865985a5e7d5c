"""Cost in status and in metrics: the reads and the bookkeeping around `thrifty.control.cost`.

Two calls, one in each loop, each a step on the status dict about to be written:

- `account_gpu_hours` (the reconcile): counts the GPUs that the model's Running pods hold, adds
  the time since its last look to the model's account in memory and to
  `thrifty_model_gpu_hours_total`, and puts the total into status.cost when a write is due or
  happens anyway (a status write of its own at most every five minutes, never per resync).
- `price_generated_tokens` (the control loop's step): dollars per million generated tokens over
  the step's window into status.cost and `thrifty_model_usd_per_million_tokens`, rewritten only
  when it moved by 5% or more.
"""

from __future__ import annotations

import contextlib
import datetime
import threading
from collections.abc import Iterable
from typing import Any

from kubernetes import client

from thrifty.api import GPU_RESOURCE, InferenceModel
from thrifty.control import MetricsWindow
from thrifty.control.cost import (
    GpuHoursAccount,
    accrue,
    gpu_hours_for_status,
    gpu_hours_write_due,
    resume_account,
    rounded_usd,
    usd_moved,
    usd_per_million_generated_tokens,
)
from thrifty.k8s import objects
from thrifty.reconcile.status import timestamp
from thrifty.reconcile.telemetry import GPU_HOURS, USD_PER_MILLION_TOKENS

# (namespace, name, uid) -> the model's GPU-hours as of the last reconcile. The uid keeps a model
# deleted and created again under its name from inheriting the old account. Reconciles of one
# model are serialised by the reconcile's own lock; this one guards the dict across models and loops.
_accounts: dict[tuple[str, str, str], GpuHoursAccount] = {}
_accounts_lock = threading.Lock()


def _key(metadata: dict[str, Any]) -> tuple[str, str, str]:
    return (str(metadata.get("namespace", "")), str(metadata.get("name", "")), str(metadata.get("uid", "")))


def forget_model(namespace: str, name: str) -> None:
    """Drop a deleted model's account and its cost series (the handler of its deletion calls it)."""
    with _accounts_lock:
        for key in [k for k in _accounts if k[:2] == (namespace, name)]:
            del _accounts[key]
    for metric in (GPU_HOURS, USD_PER_MILLION_TOKENS):
        with contextlib.suppress(KeyError):  # no such series
            metric.remove(namespace, name)


def pod_gpus(pod: dict[str, Any]) -> int:
    """GPUs one pod holds: the `nvidia.com/gpu` of its containers (limit, else request)."""
    total = 0
    for container in pod.get("spec", {}).get("containers") or []:
        resources = container.get("resources") or {}
        amount = (resources.get("limits") or {}).get(GPU_RESOURCE) or (resources.get("requests") or {}).get(
            GPU_RESOURCE
        )
        if amount is not None:
            total += int(amount)
    return total


def gpus_held(pods: Iterable[dict[str, Any]]) -> int:
    """GPUs held by the Running pods among `pods`.

    A Pending pod has no GPU yet. A Running one holds its GPUs whether Ready or not (an engine
    loading weights occupies them) and until it is gone, Terminating included.
    """
    return sum(pod_gpus(pod) for pod in pods if pod.get("status", {}).get("phase") == "Running")


def _epoch(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _stored(status: dict[str, Any]) -> tuple[float | None, float | None]:
    cost = status.get("cost") or {}
    hours = cost.get("gpuHours")
    return (float(hours) if isinstance(hours, int | float) else None), _epoch(cost.get("accountedAt"))


def _with_account(status: dict[str, Any], account: GpuHoursAccount) -> dict[str, Any]:
    cost = dict(status.get("cost") or {})
    cost["gpuHours"] = gpu_hours_for_status(account)
    cost["accountedAt"] = timestamp(datetime.datetime.fromtimestamp(account.as_of, datetime.UTC))
    return {**status, "cost": cost}


def _without(status: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in status.items() if k != key}


def account_gpu_hours(
    api: client.ApiClient,
    body: dict[str, Any],
    status: dict[str, Any],
    *,
    now: datetime.datetime | None = None,
) -> dict[str, Any]:
    """`status` (the one the reconcile is about to store for `body`) with status.cost brought up to
    date when a write is due or happens anyway; the account and the counter move in every case.

    The pods are those of `status.selector`; none are listed while the Deployment has none.
    """
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    moment = (now or datetime.datetime.now(datetime.UTC)).timestamp()
    selector = status.get("selector") or ""
    pods = (
        objects.list_objects(api, "v1", "Pod", namespace=namespace, label_selector=selector)
        if selector and status.get("replicas")
        else []
    )
    gpus = gpus_held(pods)
    before = body.get("status") or {}
    stored_hours, stored_as_of = _stored(before)
    with _accounts_lock:
        held = _accounts.get(_key(body["metadata"]))
        if held is None:
            account, added = resume_account(
                stored_gpu_hours=stored_hours, stored_as_of=stored_as_of, gpus=gpus, now=moment
            )
        else:
            account, added = accrue(held, gpus=gpus, now=moment)
        _accounts[_key(body["metadata"])] = account
    GPU_HOURS.labels(namespace=namespace, model=name).inc(added)

    written_anyway = _without(status, "cost") != _without(before, "cost")
    if written_anyway or gpu_hours_write_due(
        stored_gpu_hours=stored_hours, stored_as_of=stored_as_of, account=account
    ):
        return _with_account(status, account)
    return status


def price_generated_tokens(
    before: dict[str, Any], status: dict[str, Any], model: InferenceModel, window: MetricsWindow
) -> dict[str, Any]:
    """`status` (the one the control step is about to store) with status.cost.usdPer1MTokens from
    `window` when it moved enough, and the gauge set (or removed: no price, or no traffic).

    When the status is written anyway, the GPU-hours go along as the reconcile last accounted
    them, so a step that started from an older copy of the object never puts an older total back.
    """
    price = model.spec.cost.gpu_hourly_usd if model.spec.cost is not None else None
    value = usd_per_million_generated_tokens(window, gpus_per_replica=model.gpu_count, gpu_hourly_usd=price)
    value = rounded_usd(value) if value is not None else None
    labels = {"namespace": model.namespace, "model": model.name}
    if value is None:
        with contextlib.suppress(KeyError):  # never set
            USD_PER_MILLION_TOKENS.remove(*labels.values())
    else:
        USD_PER_MILLION_TOKENS.labels(**labels).set(value)

    stored = (before.get("cost") or {}).get("usdPer1MTokens")
    if usd_moved(stored, value):
        # None removes the field: status is stored with a JSON merge patch.
        status = {**status, "cost": {**(status.get("cost") or {}), "usdPer1MTokens": value}}
    if status != before:
        with _accounts_lock:
            account = _accounts.get(_key(model.metadata))
        if account is not None:
            status = _with_account(status, account)
    return status
