"""What the policy answers: the settings to run next, and why.

Where each setting goes (the live loop applies them; the policy only names them):

- `replicas` -> the Deployment's spec.replicas (and InferenceModel status.replicas).
- `engine_max_num_seqs` -> the Deployment's `--max-num-seqs` argument; a change rolls the pods
  with a surge, so it is rare and comes with `Action.ROLL_MAX_NUM_SEQS`.
- `engine_max_num_batched_tokens` -> the Deployment's `--max-num-batched-tokens` (None: no
  flag); a change rolls the pods the same way, with `Action.ROLL_TOKEN_BUDGET`.
- `effective_cap` -> InferenceModel status.maxNumSeqs.effective and the router's ConfigMap: the
  router keeps at most this many requests in flight per replica and queues the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from thrifty.control.planner import CapacityPlan


class Action(StrEnum):
    """The kinds of decision, as status.decisions[].action spells them."""

    HOLD = "Hold"
    """Metrics missing, stale or failing: nothing changes (never a scale-down on absent data)."""
    STEADY = "Steady"
    """Fresh metrics, nothing to change."""
    SCALE_UP = "ScaleUp"
    SCALE_DOWN = "ScaleDown"
    RAISE_CAP = "RaiseMaxNumSeqs"
    """The effective cap at the router goes up (free, instant)."""
    LOWER_CAP = "LowerMaxNumSeqs"
    """The effective cap at the router goes down (free, instant)."""
    ROLL_MAX_NUM_SEQS = "RollMaxNumSeqs"
    """The engine's --max-num-seqs changes: a rolling restart of every replica."""
    ROLL_TOKEN_BUDGET = "RollMaxNumBatchedTokens"
    """The engine's --max-num-batched-tokens changes: a rolling restart of every replica."""


@dataclass(frozen=True, slots=True)
class Change:
    """One setting that moves, with the figures behind it (one status.decisions entry)."""

    action: Action
    before: int
    after: int
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The settings to run from now on. Equal inputs give an equal Decision."""

    replicas: int
    effective_cap: int
    """Per-replica concurrency the router enforces; never above `engine_max_num_seqs`."""
    engine_max_num_seqs: int
    action: Action
    """The most consequential of `changes`, or HOLD / STEADY when nothing changes."""
    reason: str
    """For people: what drove the decision, with figures."""
    changes: tuple[Change, ...] = ()
    metrics_available: bool = True
    engine_max_num_batched_tokens: int | None = None
    """The `--max-num-batched-tokens` to run; None: no flag (vLLM's default for the GPU)."""
    """False when the window was missing, stale or failing (status MetricsAvailable=False)."""
    plan: CapacityPlan | None = None
    """The capacity planner's figures behind `replicas`, when the server configuration is known."""
    last_request: float | None = None
    """When the model was last busy, as this step sees it (epoch seconds; status.lastRequestTime)."""

    @property
    def changed(self) -> bool:
        return bool(self.changes)
