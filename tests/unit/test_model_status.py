"""The status an InferenceModel shows, computed purely from what was observed."""

from __future__ import annotations

import datetime
from typing import Any

from thrifty.reconcile.status import Problem, condition_transitions, engine_max_num_seqs, model_status

T0 = datetime.datetime(2026, 11, 27, 9, 0, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(minutes=5)


def deployment(
    *, replicas: int, ready: int, updated: int | None = None, max_num_seqs: int = 256
) -> dict[str, Any]:
    return {
        "metadata": {"generation": 2},
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"args": ["m", "--max-num-seqs", str(max_num_seqs)]}]}},
        },
        "status": {
            "observedGeneration": 2,
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": replicas if updated is None else updated,
        },
    }


def body(status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "m", "namespace": "n", "generation": 7}, "status": status or {}}


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_all_replicas_ready_is_ready_and_stable() -> None:
    status = model_status(
        body=body(), deployment=deployment(replicas=2, ready=2), selector="s", problem=None, now=T0
    )
    assert conditions(status) == {
        "Ready": ("True", "AllReplicasReady"),
        "Progressing": ("False", "Stable"),
        "Degraded": ("False", "AsExpected"),
    }
    assert status["observedGeneration"] == 7
    assert (status["replicas"], status["readyReplicas"], status["selector"]) == (2, 2, "s")
    assert status["maxNumSeqs"] == {"engine": 256, "effective": 256}


def test_rollout_in_progress_is_progressing_and_not_ready() -> None:
    status = model_status(
        body=body(), deployment=deployment(replicas=2, ready=1, updated=1), selector="s", problem=None, now=T0
    )
    assert conditions(status)["Ready"] == ("False", "ReplicasNotReady")
    assert conditions(status)["Progressing"] == ("True", "RollingOut")


def test_recomputing_a_converged_status_gives_the_same_status() -> None:
    first = model_status(
        body=body(), deployment=deployment(replicas=1, ready=1), selector="s", problem=None, now=T0
    )
    again = model_status(
        body=body(first), deployment=deployment(replicas=1, ready=1), selector="s", problem=None, now=T1
    )
    assert again == first
    assert condition_transitions(first, again) == []


def test_transition_time_moves_only_when_status_changes() -> None:
    first = model_status(
        body=body(), deployment=deployment(replicas=1, ready=1), selector="s", problem=None, now=T0
    )
    problem = Problem("InvalidEngineArgs", "spec.engine.extraArgs: unknown flag --x")
    second = model_status(
        body=body(first), deployment=deployment(replicas=1, ready=1), selector="s", problem=problem, now=T1
    )
    times = {c["type"]: c["lastTransitionTime"] for c in second["conditions"]}
    assert times["Degraded"] == "2026-11-27T09:05:00Z"
    assert times["Ready"] == "2026-11-27T09:00:00Z"
    assert [c["type"] for c in condition_transitions(first, second)] == ["Degraded"]


def test_control_loop_fields_are_carried_over() -> None:
    previous = {
        "utilization": {"batch": 0.5},
        "decisions": [{"action": "ScaleOut"}],
        "maxNumSeqs": {"engine": 256, "effective": 192},
        "conditions": [
            {
                "type": "MetricsAvailable",
                "status": "True",
                "reason": "Fresh",
                "message": "",
                "lastTransitionTime": "x",
            }
        ],
    }
    status = model_status(
        body=body(previous), deployment=deployment(replicas=1, ready=1), selector="s", problem=None, now=T0
    )
    assert status["utilization"] == {"batch": 0.5}
    assert status["decisions"] == [{"action": "ScaleOut"}]
    assert status["maxNumSeqs"] == {"engine": 256, "effective": 192}
    assert conditions(status)["MetricsAvailable"] == ("True", "Fresh")


def test_effective_cap_never_exceeds_the_engine_flag() -> None:
    previous = {"maxNumSeqs": {"engine": 256, "effective": 200}}
    status = model_status(
        body=body(previous),
        deployment=deployment(replicas=1, ready=1, max_num_seqs=128),
        selector="s",
        problem=None,
        now=T0,
    )
    assert status["maxNumSeqs"] == {"engine": 128, "effective": 128}


def test_engine_max_num_seqs_is_read_from_the_container_args() -> None:
    assert engine_max_num_seqs(deployment(replicas=1, ready=1, max_num_seqs=64)) == 64
    assert engine_max_num_seqs(None) is None
