"""`thrifty twin serve`: one vLLM twin on a local address, started from `vllm serve` arguments.

    thrifty twin serve --gpu NVIDIA-H100-80GB-HBM3 --host 127.0.0.1 -- \\
        meta-llama/Llama-3.1-8B-Instruct --max-num-seqs 128 --port 8000

The arguments after `--` are exactly what a vLLM pod would get; they are checked against the
pinned vLLM's argument spec, and they shape the twin (batch limit, KV cache, quantization...).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import signal

from thrifty.twin.config import EngineConfig, TwinConfigError, engine_config_from_vllm_args
from thrifty.twin.server import TwinServer
from thrifty.vllm_args import InvalidEngineArgs, parse_engine_args


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    twin = commands.add_parser("twin", help="a simulated vLLM server (the vLLM twin)")
    actions = twin.add_subparsers(dest="action", required=True)
    serve = actions.add_parser("serve", help="serve one twin until interrupted")
    serve.add_argument("--gpu", default="NVIDIA-H100-80GB-HBM3", help="GPU product to simulate")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--load-seconds", type=float, default=None, help="simulated model load time")
    serve.add_argument(
        "--step-time-scale",
        type=float,
        default=1.0,
        help="every engine step takes this many times the calibrated time (1.3: 30%% slower)",
    )
    serve.add_argument("vllm_args", nargs=argparse.REMAINDER, metavar="-- VLLM_ARGS")


def run(args: argparse.Namespace) -> int:
    vllm_args = [a for a in args.vllm_args if a != "--"] if args.vllm_args[:1] == ["--"] else args.vllm_args
    try:
        config = engine_config_from_vllm_args(parse_engine_args(vllm_args), gpu_product=args.gpu)
        if not (math.isfinite(args.step_time_scale) and args.step_time_scale > 0):
            raise TwinConfigError(f"--step-time-scale: must be a positive number, got {args.step_time_scale}")
    except (InvalidEngineArgs, TwinConfigError) as error:
        print(f"thrifty twin: {error}")
        return 2
    asyncio.run(
        _serve(config, host=args.host, load_seconds=args.load_seconds, step_time_scale=args.step_time_scale)
    )
    return 0


async def _serve(
    config: EngineConfig, *, host: str, load_seconds: float | None, step_time_scale: float
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with TwinServer(
        config, host=host, load_seconds=load_seconds, step_time_scale=step_time_scale
    ) as server:
        print(f"twin of {config.model} on {config.gpu.gpu} at {server.url}: loading the model", flush=True)
        await server.wait_ready()
        print("model loaded: ready", flush=True)
        await stop.wait()
