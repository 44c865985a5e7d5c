"""The vLLM twin: a calibrated simulator of one vLLM (V1 engine) server.

One pure model (`Engine`: scheduler, paged KV cache with prefix caching, roofline step time) and
two drivers over it:

- `TwinServer`: vLLM's HTTP API and /metrics in real time, one per address, many per process;
- `replay` / `Simulation`: many twins in simulated time, fed by a trace through a dispatch policy.

Configure either from a vLLM pod's arguments with `engine_config_from_vllm_args`.
"""

from thrifty.twin.architectures import ModelArchitecture, UnknownModelError, architecture_for, known_models
from thrifty.twin.block_hashes import hashes_from_text, hashes_from_trace_ids
from thrifty.twin.config import (
    EngineConfig,
    SpeculativeDecoding,
    TwinConfigError,
    WeightFormat,
    engine_config_from_vllm_args,
)
from thrifty.twin.engine import (
    Engine,
    EngineRequest,
    RequestRejectedError,
    RequestState,
    StepOutcome,
    StepPlan,
)
from thrifty.twin.fast_forward import Dispatch, RoundRobin, SimTwin, Simulation, replay
from thrifty.twin.gpu_calibration import (
    CalibrationError,
    GpuCalibration,
    available_gpus,
    load_calibration,
    load_calibration_file,
)
from thrifty.twin.replay_results import LatencyHistogram, ReplayResult, RequestResult, TwinSeries, percentile
from thrifty.twin.server import TwinServer
from thrifty.twin.sizing import ServerSizing, size_server
from thrifty.twin.step_cost import StepCostModel, step_cost_model
from thrifty.twin.trace_requests import TraceRequest, load_azure_trace, load_mooncake_trace

__all__ = [
    "CalibrationError",
    "Dispatch",
    "Engine",
    "EngineConfig",
    "EngineRequest",
    "GpuCalibration",
    "LatencyHistogram",
    "ModelArchitecture",
    "ReplayResult",
    "RequestRejectedError",
    "RequestResult",
    "RequestState",
    "RoundRobin",
    "ServerSizing",
    "SimTwin",
    "Simulation",
    "SpeculativeDecoding",
    "StepCostModel",
    "StepOutcome",
    "StepPlan",
    "TraceRequest",
    "TwinConfigError",
    "TwinSeries",
    "TwinServer",
    "UnknownModelError",
    "WeightFormat",
    "architecture_for",
    "available_gpus",
    "engine_config_from_vllm_args",
    "hashes_from_text",
    "hashes_from_trace_ids",
    "known_models",
    "load_azure_trace",
    "load_calibration",
    "load_calibration_file",
    "load_mooncake_trace",
    "percentile",
    "replay",
    "size_server",
    "step_cost_model",
]
