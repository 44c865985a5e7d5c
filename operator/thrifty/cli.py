"""The `thrifty` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from thrifty.testbed.processes import TestbedError


def _testbed_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # Imported lazily: the testbed is development tooling, not part of the operator's start-up.
    from thrifty.testbed.cluster import TESTBED_DIR
    from thrifty.testbed.commands import default_state_dir

    testbed = commands.add_parser("testbed", help="the local Kubernetes testbed with simulated GPU nodes")
    actions = testbed.add_subparsers(dest="action", required=True)
    state = argparse.ArgumentParser(add_help=False)
    state.add_argument(
        "--state-dir", type=Path, default=default_state_dir(), help="where the run keeps its state"
    )
    nodes = argparse.ArgumentParser(add_help=False)
    nodes.add_argument("--nodes", type=Path, default=TESTBED_DIR / "nodes.yaml", help="node-profile YAML")
    actions.add_parser("build", help="build the control-plane binaries into the cache (no-op when cached)")
    actions.add_parser("up", parents=[state, nodes], help="start the testbed in a new network namespace")
    actions.add_parser("down", parents=[state], help="stop every testbed process and remove its state")
    actions.add_parser("status", parents=[state], help="what runs where, nodes and Prometheus targets")
    shell = actions.add_parser("shell", parents=[state], help="a shell (or COMMAND) inside the namespace")
    shell.add_argument("command", nargs=argparse.REMAINDER)
    serve = actions.add_parser("serve", parents=[state, nodes], help=argparse.SUPPRESS)
    serve.add_argument("--bin-dir", type=Path, required=True)
    describe = actions.add_parser("describe", help=argparse.SUPPRESS)
    describe.add_argument("--kubeconfig", type=Path, required=True)
    describe.add_argument("--prometheus", default="http://127.0.0.1:9090")


def _run_testbed(args: argparse.Namespace) -> int:
    from thrifty.testbed import commands

    match args.action:
        case "build":
            commands.build()
        case "up":
            commands.up(args.state_dir, args.nodes)
            return commands.status(args.state_dir)
        case "down":
            commands.down(args.state_dir)
        case "status":
            return commands.status(args.state_dir)
        case "shell":
            return commands.shell(args.state_dir, args.command)
        case "serve":
            commands.serve(args.state_dir, args.nodes, args.bin_dir)
        case "describe":
            from thrifty.testbed.describe import describe

            print(describe(args.kubeconfig, args.prometheus))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="thrifty", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _testbed_parser(commands)
    args = parser.parse_args(argv)
    try:
        if args.command == "testbed":
            return _run_testbed(args)
    except TestbedError as error:
        print(f"thrifty: {error}", file=sys.stderr)
        return 1
    parser.error(f"unknown command {args.command}")
    return 2
