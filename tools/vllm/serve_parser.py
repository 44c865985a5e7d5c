"""vLLM's own `vllm serve` argument parser, built on a machine without a GPU.

Shared by generate_spec.py and check_args.py. Both run under `.venv-vllm/bin/python`, never under the
operator's virtualenv: the operator must not import vLLM.
"""

from __future__ import annotations

import os
import sys
from typing import Any

# vLLM picks its platform at import time; these keep it on the CPU and off the network.
os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
# vLLM logs to stdout by default; our scripts keep stdout for their JSON answer.
os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")


def build_serve_parser(*, with_help_text: bool = False) -> tuple[Any, Any]:
    """Return (top-level parser, `serve` sub-parser), wired the way `vllm serve` wires them.

    `vllm serve ...` parses through the top-level `vllm` parser, whose `parse_args` rewrites the
    command line first (`--model X` moved to the positional, `--a_b` spelled `--a-b`, `--x.y v`
    folded into `--x '{"y": v}'`). So callers parse `["serve", *args]` with the top-level parser.
    """
    import vllm.engine.arg_utils as arg_utils
    from vllm.entrypoints.common.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    # vLLM only reads the config docstrings (the help text) when it thinks `--help` was asked for.
    arg_utils.NEEDS_HELP = with_help_text
    top = FlexibleArgumentParser(prog="vllm", description="vLLM CLI")
    top.add_argument("-v", "--version", action="version", version=vllm_version())
    subparsers = top.add_subparsers(required=False, dest="subparser")
    serve = subparsers.add_parser("serve", usage="vllm serve [model_tag] [options]")
    serve = make_arg_parser(serve)
    return top, serve


def vllm_version() -> str:
    import vllm

    return str(vllm.__version__)


def real_stdout() -> Any:
    """Point `sys.stdout` at stderr so that stray prints cannot corrupt the JSON answer; return the
    original stdout for that answer."""
    out = sys.stdout
    sys.stdout = sys.stderr
    return out
