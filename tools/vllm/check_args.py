"""Ask the real vLLM parser whether `vllm serve` argument lists are valid.

Run with vLLM's own virtualenv:

    echo '[["meta-llama/Llama-3.1-8B", "--max-num-seqs", "256"], ["m", "--max-num-seqs", "x"]]' \
        | .venv-vllm/bin/python tools/vllm/check_args.py

stdin is a JSON list of argument lists (what follows `vllm serve`). stdout is a JSON list with one
object per list, in order: `{"ok": true, "error": null, "values": {...}}` or
`{"ok": false, "error": "...", "values": null}`. `values` holds the parsed namespace (by dest) for
every value that JSON can carry, after the same `model_tag` -> `model` step `vllm serve` takes.

Each list goes through what `vllm serve` does before it needs a model or a GPU: the top-level
parser's `parse_args(["serve", ...])`, `validate_parsed_serve_args`, then
`AsyncEngineArgs.from_cli_args`. `create_engine_config` is left out: it downloads the model's config.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from typing import Any

from serve_parser import build_serve_parser, real_stdout


def check_one(parser: Any, args: list[str]) -> dict[str, Any]:
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.entrypoints.common.cli_args import validate_parsed_serve_args

    errors = io.StringIO()
    try:
        # argparse reports a bad command line by printing to stderr and exiting with status 2.
        with contextlib.redirect_stderr(errors):
            namespace = parser.parse_args(["serve", *args])
        validate_parsed_serve_args(namespace)
        if namespace.model_tag is not None:
            namespace.model = namespace.model_tag
        AsyncEngineArgs.from_cli_args(namespace)
    except SystemExit:
        # argparse prints "usage: ..." and then "PROG: error: MESSAGE", which may span lines.
        printed = errors.getvalue()
        message = printed[printed.rfind(": error: ") + 2 :] if ": error: " in printed else printed
        return {"ok": False, "error": " ".join(message.split()) or "argparse exited", "values": None}
    except Exception as error:
        return {"ok": False, "error": f"{type(error).__name__}: {error}", "values": None}
    return {"ok": True, "error": None, "values": _json_values(vars(namespace))}


def _json_values(values: dict[str, Any]) -> dict[str, Any]:
    carried = {}
    for dest, value in values.items():
        try:
            carried[dest] = json.loads(json.dumps(value))
        except (TypeError, ValueError):
            continue
    return carried


def main() -> None:
    out = real_stdout()
    argv_lists = json.load(sys.stdin)
    if not isinstance(argv_lists, list) or not all(
        isinstance(args, list) and all(isinstance(arg, str) for arg in args) for args in argv_lists
    ):
        raise SystemExit("stdin must be a JSON list of lists of strings")
    parser, _ = build_serve_parser()
    results = [check_one(parser, args) for args in argv_lists]
    json.dump(results, out, indent=1)
    out.write("\n")


if __name__ == "__main__":
    main()
