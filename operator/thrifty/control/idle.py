"""Scale to zero: when a model with `spec.scaling.replicas.min: 0` may give up its last replica.

The loop remembers when it last saw the model busy (a request running or waiting on a replica,
requests finishing, or requests held at the router), in status.lastRequestTime. A model goes to
zero once that is `idle_delay_s` old and nothing is in flight now, with every replica ready (a
replica still starting was asked for by someone). A router that holds a request for the model at
zero wakes it through the model's reconcile, which also restarts the idle clock, so under sparse
traffic the model starts at most once per idle delay and never flaps between zero and one.
"""

from __future__ import annotations

from thrifty.control.policy import ScalingPolicy
from thrifty.control.state import ScalingState
from thrifty.control.window import MetricsWindow


def last_busy(window: MetricsWindow, previous: float | None, now: float) -> float:
    """The newest moment the window shows the model busy; else `previous`; else `now` (a model
    first seen idle starts its idle clock here)."""
    busy = [
        sample.time
        for sample in window.samples
        if sample.running > 0 or sample.waiting > 0 or (sample.finished_per_s or 0.0) > 0
    ]
    busy += [moment for moment, waiting in window.router_waiting if waiting > 0]
    newest = max(busy, default=None)
    if newest is None:
        return previous if previous is not None else now
    return newest if previous is None else max(previous, newest)


def idle_reason(
    window: MetricsWindow, state: ScalingState, policy: ScalingPolicy, last_request: float, now: float
) -> str:
    """Why the last replica may go now, in words; empty while the model must keep serving."""
    if policy.min_replicas > 0 or state.replicas == 0:
        return ""
    if state.ready_replicas < state.replicas or state.rollout_in_progress:
        return ""
    latest = window.latest_by_pod().values()
    if any(sample.demand > 0 for sample in latest):
        return ""
    idle_for = now - last_request
    if idle_for < policy.idle_delay_s:
        return ""
    return (
        f"no request for {idle_for:.0f}s (idle delay {policy.idle_delay_s:g}s): scaling to zero; "
        "a request through the router wakes it"
    )
