"""The live control loop's step for one InferenceModel: read, decide, hand the decision over.

The decision itself is the pure `thrifty.control.decide`; this module only gathers its inputs
(the Deployment, the ready pods, the status history, a metrics window) and hands the decision to
the model's one reconcile (`reconcile_model(..., record=...)`), which records it in status
(status.desired, the effective cap, the history) and carries it out on the Deployment (a surge
rollout for a flag change). The loop writes nothing itself and never the InferenceModel's spec.
Everything the policy needs is rebuilt from the cluster each step, so an operator restart
changes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Callable, Sequence
from typing import Any

from kubernetes import client
from pydantic import ValidationError

from thrifty.api import InferenceModel
from thrifty.api.status import ScalingDecision
from thrifty.control import (
    Decision,
    MetricsWindow,
    ScalingPolicy,
    ScalingState,
    decide,
    last_actions,
    policy_from_spec,
)
from thrifty.k8s import objects
from thrifty.reconcile.model import reconcile_model
from thrifty.reconcile.plan import LoopRecord
from thrifty.reconcile.status import engine_max_num_batched_tokens, engine_max_num_seqs
from thrifty.reconcile.telemetry import METRICS_QUERY_ERRORS
from thrifty.render import model_selector
from thrifty.render.engine_args import engine_args
from thrifty.twin.config import EngineConfig, TwinConfigError, engine_config_from_vllm_args
from thrifty.twin.gpu_calibration import CalibrationError
from thrifty.twin.sizing import size_server
from thrifty.vllm_args import InvalidEngineArgs, parse_engine_args

log = logging.getLogger(__name__)

WindowReader = Callable[[InferenceModel, list[str], float, Sequence[tuple[str, str]]], MetricsWindow]
"""(model, ready pod names, now, the (router, tier) pairs that send to the model) -> its window."""


def _ready_pods(api: client.ApiClient, model: InferenceModel) -> list[str]:
    selector = ",".join(f"{k}={v}" for k, v in model_selector(model).items())
    pods = objects.list_objects(api, "v1", "Pod", namespace=model.namespace, label_selector=selector)
    ready = []
    for pod in pods:
        conditions = pod.get("status", {}).get("conditions", [])
        if not pod["metadata"].get("deletionTimestamp") and any(
            c["type"] == "Ready" and c["status"] == "True" for c in conditions
        ):
            ready.append(pod["metadata"]["name"])
    return sorted(ready)


def _rollout_in_progress(deployment: dict[str, Any]) -> bool:
    spec, status = deployment.get("spec", {}), deployment.get("status", {})
    desired = int(spec.get("replicas", 0) or 0)
    return bool(
        status.get("observedGeneration", 0) < deployment["metadata"].get("generation", 0)
        or int(status.get("updatedReplicas", 0) or 0) < desired
        or int(status.get("replicas", 0) or 0) > desired
    )


def scaling_state(body: dict[str, Any], deployment: dict[str, Any], ready_pods: list[str]) -> ScalingState:
    """The policy's view of the present, rebuilt from the Deployment and the status history."""
    status = body.get("status") or {}
    engine = engine_max_num_seqs(deployment) or 1
    effective = (status.get("maxNumSeqs") or {}).get("effective") or engine
    history = [ScalingDecision.model_validate(d) for d in status.get("decisions") or []]
    last = last_actions(history)
    return ScalingState(
        replicas=int(deployment["spec"].get("replicas", 0) or 0),
        ready_replicas=len(ready_pods),
        engine_max_num_seqs=engine,
        effective_cap=min(int(effective), engine),
        last_scale_up=last.scale_up,
        last_scale_down=last.scale_down,
        last_rollout=last.rollout,
        last_cap_change=last.cap_change,
        rollout_in_progress=_rollout_in_progress(deployment),
        last_request=_epoch(status.get("lastRequestTime")),
        engine_max_num_batched_tokens=engine_max_num_batched_tokens(deployment),
    )


def _epoch(stamp: Any) -> float | None:
    """An RFC 3339 time from status as epoch seconds; None when unset or unreadable."""
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def compress_time(policy: ScalingPolicy, factor: float) -> ScalingPolicy:
    """Every duration of the policy (windows, cooldowns, start-up) times ``factor``.

    For the testbed and demos, where twins load in seconds and a scenario must fit in minutes;
    production runs at factor 1. The sample interval is the loop's real period and stays as is.
    """
    if factor == 1.0:
        return policy
    durations = {
        f.name: getattr(policy, f.name) * factor
        for f in dataclasses.fields(policy)
        if f.name.endswith("_s") and f.name != "sample_interval_s"
    }
    return dataclasses.replace(policy, **durations)


def server_config(
    model: InferenceModel, *, max_num_seqs: int, max_num_batched_tokens: int | None = None
) -> EngineConfig | None:
    """One replica's server as the capacity model sees it: the pod's own vLLM arguments on the
    spec's GPU product. None when the calibration does not know the model or the GPU (the loop
    then plans from its metrics window alone)."""
    try:
        args = engine_args(model, max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens)
        parsed = parse_engine_args(args)
        config = engine_config_from_vllm_args(parsed, gpu_product=model.spec.resources.gpu.product)
        size_server(config)
    except (InvalidEngineArgs, TwinConfigError, CalibrationError):
        return None
    return config


def control_step(
    api: client.ApiClient,
    read_window: WindowReader,
    body: dict[str, Any],
    *,
    now: datetime.datetime,
    router_tiers: Sequence[tuple[str, str]] = (),
    sample_interval_s: float = 15.0,
    time_scale: float = 1.0,
) -> Decision | None:
    """One step for one model; None when the model has no scaling or nothing to scale yet."""
    try:
        model = InferenceModel.model_validate(body)
    except ValidationError:
        return None  # the reconcile reports it as Degraded
    scaling = model.spec.scaling
    if scaling is None or not scaling.enabled:
        return None
    deployment = objects.read(api, "apps/v1", "Deployment", model.name, namespace=model.namespace)
    if deployment is None:
        return None
    ready = _ready_pods(api, model)
    state = scaling_state(body, deployment, ready)
    policy = policy_from_spec(
        scaling,
        engine_max_num_seqs=model.spec.batching.max_num_seqs,
        behind_router=bool(router_tiers),
        sample_interval_s=sample_interval_s,
        engine=server_config(
            model,
            max_num_seqs=state.engine_max_num_seqs,
            max_num_batched_tokens=state.engine_max_num_batched_tokens,
        ),
        token_budget_pinned=model.spec.batching.max_num_batched_tokens is not None,
    )
    policy = compress_time(policy, time_scale)
    epoch = now.timestamp()
    window = read_window(model, ready, epoch, router_tiers)
    if window.errors:
        METRICS_QUERY_ERRORS.labels(namespace=model.namespace, model=model.name).inc(len(window.errors))
    decision = decide(window, state, policy, epoch)
    reconcile_model(api, body, LoopRecord(decision, window, now))
    return decision
