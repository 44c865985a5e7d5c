"""The model's plan (thrifty.reconcile.plan): children and status from what was observed and what
the control loop decided, without a cluster."""

from __future__ import annotations

import datetime
from dataclasses import replace
from typing import Any

import yaml
from test_control_planner import PLANNED, traffic_window
from test_control_windows import NOW, state

from thrifty.control import Action, Change, Decision, MetricsWindow, decide
from thrifty.reconcile.plan import LoopRecord, Observed, plan_model
from thrifty.reconcile.status import engine_max_num_batched_tokens, engine_max_num_seqs

T0 = datetime.datetime(2026, 12, 6, 9, 0, tzinfo=datetime.UTC)
H100 = "NVIDIA-H100-80GB-HBM3"
MODEL = """
apiVersion: thrifty.dev/v1alpha1
kind: InferenceModel
metadata: {name: chat, namespace: models, generation: 3, resourceVersion: "7", uid: u-1}
spec:
  model: {source: hf://meta-llama/Llama-3.1-8B-Instruct, servedName: chat, maxModelLen: 4096}
  batching: {maxNumSeqs: 16, maxNumBatchedTokens: 4096}
  resources: {gpu: {product: NVIDIA-H100-80GB-HBM3, count: 1}}
  scaling:
    replicas: {min: 1, max: 4}
    slo: {ttftP95: 2s, itlP95: 50ms}
    tuneMaxNumSeqs: {min: 8, max: 64}
"""


def model(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load(MODEL)
    body["spec"].update(spec)
    if status is not None:
        body["status"] = status
    return body


def running(replicas: int, max_num_seqs: int = 16) -> dict[str, Any]:
    """A rolled-out vLLM Deployment as the apiserver returns it."""
    return {
        "metadata": {"name": "chat", "namespace": "models", "generation": 2},
        "spec": {
            "replicas": replicas,
            "template": {
                "spec": {"containers": [{"name": "vllm", "args": ["--max-num-seqs", str(max_num_seqs)]}]}
            },
        },
        "status": {
            "observedGeneration": 2,
            "replicas": replicas,
            "readyReplicas": replicas,
            "updatedReplicas": replicas,
        },
    }


def observed(deployment: dict[str, Any] | None, products: tuple[str, ...] = (H100,)) -> Observed:
    return Observed(deployment=deployment, gpu_products=products, now=T0)


def deployment_of(plan_children: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    return next(child for child in plan_children if child["kind"] == "Deployment")


def scale_up(to: int, flag: int = 16) -> LoopRecord:
    decision = Decision(
        replicas=to,
        effective_cap=12,
        engine_max_num_seqs=flag,
        action=Action.SCALE_UP,
        reason="demand",
        changes=(Change(Action.SCALE_UP, 2, to, "demand 30 req/s over 9.8 req/s a replica"),),
    )
    return LoopRecord(decision, MetricsWindow(start=0.0, end=1.0), T0)


def test_the_loops_decision_is_recorded_and_carried_out_in_one_plan() -> None:
    plan = plan_model(model(), observed(running(2)), scale_up(3, flag=32))

    deployment = deployment_of(plan.children)
    assert deployment["spec"]["replicas"] == 3
    assert engine_max_num_seqs(deployment) == 32
    assert plan.status["desired"] == {"replicas": 3, "engineMaxNumSeqs": 32}
    assert plan.status["maxNumSeqs"]["effective"] == 12
    assert plan.status["decisions"][0] == {
        "time": "2026-12-06T09:00:00Z",
        "action": "ScaleUp",
        "from": 2,
        "to": 3,
        "reason": "demand 30 req/s over 9.8 req/s a replica",
    }
    assert {c["type"]: c["status"] for c in plan.status["conditions"]}["MetricsAvailable"] == "True"


def test_a_reconcile_without_the_loop_keeps_the_recorded_decision_not_the_running_count() -> None:
    """The Deployment still runs 2 (the apply of 3 has not happened yet): a reconcile triggered now
    must carry out the recorded 3, not put the 2 back."""
    body = model({"desired": {"replicas": 3, "engineMaxNumSeqs": 32}})

    plan = plan_model(body, observed(running(2)))

    deployment = deployment_of(plan.children)
    assert deployment["spec"]["replicas"] == 3
    assert engine_max_num_seqs(deployment) == 32
    assert plan.status["desired"] == {"replicas": 3, "engineMaxNumSeqs": 32}
    assert "decisions" not in plan.status


def test_without_a_recorded_decision_the_running_deployment_is_kept_within_bounds() -> None:
    assert deployment_of(plan_model(model(), observed(running(2))).children)["spec"]["replicas"] == 2
    assert deployment_of(plan_model(model(), observed(running(9))).children)["spec"]["replicas"] == 4
    assert deployment_of(plan_model(model(), observed(None)).children)["spec"]["replicas"] == 1
    narrowed = model({"desired": {"replicas": 3, "engineMaxNumSeqs": 200}})
    narrowed["spec"]["scaling"]["replicas"] = {"min": 1, "max": 2}
    plan = plan_model(narrowed, observed(running(3)))
    assert plan.status["desired"] == {"replicas": 2, "engineMaxNumSeqs": 64}


def test_with_scaling_off_the_spec_decides_and_the_record_says_so() -> None:
    body = model({"desired": {"replicas": 3, "engineMaxNumSeqs": 32}}, replicas=5)
    body["spec"]["scaling"]["enabled"] = False

    plan = plan_model(body, observed(running(3, 32)))

    deployment = deployment_of(plan.children)
    assert deployment["spec"]["replicas"] == 5
    assert engine_max_num_seqs(deployment) == 16
    assert plan.status["desired"] == {"replicas": 5, "engineMaxNumSeqs": 16}


def test_a_spec_that_cannot_run_plans_no_children_and_keeps_the_decision_on_record() -> None:
    recorded = {"desired": {"replicas": 3, "engineMaxNumSeqs": 32}}
    bad_flag = model(recorded, engine={"extraArgs": ["--no-such-flag"]})
    nowhere = model(recorded)

    for body, products, reason in (
        (bad_flag, (H100,), "InvalidEngineArgs"),
        (nowhere, ("NVIDIA-L4",), "NoMatchingNodes"),
    ):
        plan = plan_model(body, observed(running(3, 32), products))
        degraded = next(c for c in plan.status["conditions"] if c["type"] == "Degraded")
        assert plan.children == ()
        assert (degraded["status"], degraded["reason"]) == ("True", reason)
        assert plan.status["desired"] == recorded["desired"]
    assert "products on this cluster: NVIDIA-L4" in next(
        c["message"]
        for c in plan_model(nowhere, observed(None, ("NVIDIA-L4",))).status["conditions"]
        if c["type"] == "Degraded"
    )


def test_the_planners_capacity_goes_to_status() -> None:
    window = traffic_window(pods=4, arrivals_per_s=20.0)
    decision = decide(window, state(replicas=4), PLANNED, NOW)
    assert decision.plan is not None

    plan = plan_model(model(), observed(running(4)), LoopRecord(decision, window, T0))

    capacity = plan.status["capacity"]
    assert capacity["requestsPerSecond"] == float(f"{decision.plan.capacity.rate_per_s:.3g}")
    assert capacity["plannedRequestsPerSecond"] < capacity["requestsPerSecond"]
    assert capacity["binding"] == decision.plan.capacity.binding
    assert capacity["stepTimeScale"] == 1.0
    assert plan.status["utilization"]["batch"] > 0


def test_missing_metrics_turn_metrics_available_false_and_hold() -> None:
    hold = Decision(
        replicas=2,
        effective_cap=16,
        engine_max_num_seqs=16,
        action=Action.HOLD,
        reason="x",
        metrics_available=False,
    )
    fresh = {
        "type": "MetricsAvailable",
        "status": "True",
        "reason": "Fresh",
        "message": "",
        "lastTransitionTime": "2026-12-06T08:00:00Z",
    }
    body = model({"conditions": [fresh], "desired": {"replicas": 2, "engineMaxNumSeqs": 16}})

    plan = plan_model(body, observed(running(2)), LoopRecord(hold, MetricsWindow(start=0.0, end=1.0), T0))

    metrics = next(c for c in plan.status["conditions"] if c["type"] == "MetricsAvailable")
    assert (metrics["status"], metrics["reason"]) == ("False", "MissingOrStale")
    assert metrics["lastTransitionTime"] == "2026-12-06T09:00:00Z"
    assert deployment_of(plan.children)["spec"]["replicas"] == 2


def test_planning_is_deterministic() -> None:
    body, seen, record = model(), observed(running(2)), scale_up(3)
    assert plan_model(body, seen, record) == plan_model(body, seen, record)


def _unpinned(status: dict[str, Any] | None = None) -> dict[str, Any]:
    body = model(status)
    body["spec"]["batching"] = {"maxNumSeqs": 16}
    return body


def _with_budget(tokens: int, flag: int = 16) -> LoopRecord:
    record = scale_up(3, flag=flag)
    decision = replace(record.decision, engine_max_num_batched_tokens=tokens)
    return replace(record, decision=decision)


def test_the_loops_token_budget_reaches_the_pods_and_status_desired() -> None:
    plan = plan_model(_unpinned(), observed(running(2)), _with_budget(1024))

    deployment = deployment_of(plan.children)
    assert engine_max_num_batched_tokens(deployment) == 1024
    assert plan.status["desired"] == {
        "replicas": 3,
        "engineMaxNumSeqs": 16,
        "engineMaxNumBatchedTokens": 1024,
    }


def test_a_budget_in_the_spec_wins_over_the_loops_and_status_drops_the_loops() -> None:
    body = model({"desired": {"replicas": 3, "engineMaxNumSeqs": 16, "engineMaxNumBatchedTokens": 1024}})

    plan = plan_model(body, observed(running(3)), _with_budget(1024))

    assert engine_max_num_batched_tokens(deployment_of(plan.children)) == 4096  # spec.batching's
    assert plan.status["desired"]["engineMaxNumBatchedTokens"] is None  # the merge patch removes it


def test_a_budget_below_the_batch_limit_is_raised_to_it_as_vllm_requires() -> None:
    plan = plan_model(_unpinned(), observed(running(2)), _with_budget(32, flag=64))
    assert engine_max_num_batched_tokens(deployment_of(plan.children)) == 64


def test_with_the_spec_unpinned_and_no_decision_the_pods_run_vllms_default_budget() -> None:
    plan = plan_model(_unpinned(), observed(running(2)))
    assert engine_max_num_batched_tokens(deployment_of(plan.children)) is None
    assert "engineMaxNumBatchedTokens" not in plan.status["desired"]
