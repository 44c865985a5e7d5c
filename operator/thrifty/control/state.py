"""What the policy must know besides metrics: the current settings and when each last changed.

Everything here can be rebuilt from the InferenceModel's status (replicas, maxNumSeqs, the decision
history) and its Deployment, so a restarted operator decides exactly as the old one would have.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from thrifty.api.status import ScalingDecision
from thrifty.control.decision import Action


@dataclass(frozen=True, slots=True)
class ScalingState:
    """The model's serving settings now, and the times of the last actions of each kind."""

    replicas: int
    """Replicas the Deployment asks for, including those still starting."""
    ready_replicas: int
    """Replicas that pass their readiness probe (and so should be scraped)."""
    engine_max_num_seqs: int
    """The `--max-num-seqs` the pods were started with."""
    effective_cap: int
    """The live per-replica concurrency cap at the router (at most the engine flag)."""
    last_scale_up: float | None = None
    last_scale_down: float | None = None
    last_rollout: float | None = None
    """When the engine flag last changed (its rolling restart began)."""
    last_cap_change: float | None = None
    rollout_in_progress: bool = False
    """A rolling restart is under way: the engine flag must not move again until it ends."""
    last_request: float | None = None
    """When the model was last seen busy or asked to wake (status.lastRequestTime)."""
    engine_max_num_batched_tokens: int | None = None
    """The `--max-num-batched-tokens` the pods were started with; None: no flag (vLLM's default)."""

    @property
    def last_replica_change(self) -> float | None:
        times = [t for t in (self.last_scale_up, self.last_scale_down) if t is not None]
        return max(times) if times else None


@dataclass(frozen=True, slots=True)
class LastActions:
    """When each kind of action was last taken, read back from status.decisions."""

    scale_up: float | None = None
    scale_down: float | None = None
    rollout: float | None = None
    cap_change: float | None = None


_CAP_ACTIONS = frozenset({Action.RAISE_CAP.value, Action.LOWER_CAP.value})


def last_actions(decisions: Iterable[ScalingDecision]) -> LastActions:
    """The newest time of each action kind in a decision history (any order), as epoch seconds.

    This is how the live loop restores cooldowns after a restart: the history is in status.
    """
    newest: dict[str, float] = {}
    for decision in decisions:
        stamp = _epoch(decision.time)
        key = "cap" if decision.action in _CAP_ACTIONS else decision.action
        if stamp > newest.get(key, float("-inf")):
            newest[key] = stamp
    return LastActions(
        scale_up=newest.get(Action.SCALE_UP.value),
        scale_down=newest.get(Action.SCALE_DOWN.value),
        rollout=max(
            (
                newest[a.value]
                for a in (Action.ROLL_MAX_NUM_SEQS, Action.ROLL_TOKEN_BUDGET)
                if a.value in newest
            ),
            default=None,
        ),
        cap_change=newest.get("cap"),
    )


def _epoch(moment: datetime) -> float:
    return moment.timestamp()
