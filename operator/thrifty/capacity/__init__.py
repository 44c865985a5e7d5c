"""What one replica sustains at the SLO, for the request mix it serves: pure, no I/O.

Derived from the twin's step-cost calibration (one source of truth for GPU speed), with a
mean-field model of continuous batching instead of a simulation, so the control loop and
`thrifty plan` can ask it every period.

    model = ReplicaModel(engine_config)
    mix = RequestMix.from_requests(prompt_lengths, output_lengths)
    model.capacity(mix, LatencySlo(ttft_p95_s=2.0, itl_p95_s=0.05)).rate_per_s
    best_token_budget(engine_config, mix, slo).tokens    # the --max-num-batched-tokens to run
"""

from thrifty.capacity.budget import TOKEN_BUDGETS, BudgetChoice, best_token_budget, token_budgets
from thrifty.capacity.mix import MixError, RequestMix
from thrifty.capacity.model import (
    ITL_SLOW_BUDGET,
    LatencySlo,
    LoadPrediction,
    ReplicaCapacity,
    ReplicaModel,
)

__all__ = [
    "ITL_SLOW_BUDGET",
    "TOKEN_BUDGETS",
    "BudgetChoice",
    "LatencySlo",
    "LoadPrediction",
    "MixError",
    "ReplicaCapacity",
    "ReplicaModel",
    "RequestMix",
    "best_token_budget",
    "token_budgets",
]
