"""Thrifty's control policy: a window of vLLM metrics and the current settings in, a decision out.

Pure: no I/O, no clock, no randomness. `thrifty.metrics` builds the window from Prometheus; the
live loop applies the decision; the autoscaling benchmark runs the very same function on twins.

    policy = policy_from_spec(model.spec.scaling, engine_max_num_seqs=256, behind_router=True)
    decision = decide(window, state, policy, now=time.time())
    decision.replicas, decision.effective_cap, decision.engine_max_num_seqs, decision.reason
"""

from thrifty.control.decide import decide
from thrifty.control.decision import Action, Change, Decision
from thrifty.control.policy import ScalingPolicy, policy_from_spec
from thrifty.control.signals import Signals, read_signals
from thrifty.control.state import LastActions, ScalingState, last_actions
from thrifty.control.window import LatencySample, MetricsWindow, ReplicaSample

__all__ = [
    "Action",
    "Change",
    "Decision",
    "LastActions",
    "LatencySample",
    "MetricsWindow",
    "ReplicaSample",
    "ScalingPolicy",
    "ScalingState",
    "Signals",
    "decide",
    "last_actions",
    "policy_from_spec",
    "read_signals",
]
