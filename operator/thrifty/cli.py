"""The `thrifty` command."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from thrifty.testbed.processes import TestbedError
from thrifty.twin import cli as twin_cli


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
    nodes.add_argument(
        "--twin-load-seconds",
        type=float,
        default=None,
        help="simulated model load time of every vLLM twin (default: modelled from the weights' size)",
    )
    actions.add_parser("build", help="build the control-plane binaries into the cache (no-op when cached)")
    actions.add_parser("up", parents=[state, nodes], help="start the testbed in a new network namespace")
    actions.add_parser("down", parents=[state], help="stop every testbed process and remove its state")
    actions.add_parser("status", parents=[state], help="what runs where, nodes and Prometheus targets")
    shell = actions.add_parser("shell", parents=[state], help="a shell (or COMMAND) inside the namespace")
    shell.add_argument("argv", nargs=argparse.REMAINDER, metavar="COMMAND")
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
            commands.up(args.state_dir, args.nodes, twin_load_seconds=args.twin_load_seconds)
            return commands.status(args.state_dir)
        case "down":
            commands.down(args.state_dir)
        case "status":
            return commands.status(args.state_dir)
        case "shell":
            return commands.shell(args.state_dir, args.argv)
        case "serve":
            commands.serve(args.state_dir, args.nodes, args.bin_dir, twin_load_seconds=args.twin_load_seconds)
        case "describe":
            from thrifty.testbed.describe import describe

            print(describe(args.kubeconfig, args.prometheus))
    return 0


def _operator_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    operator = commands.add_parser("operator", help="run the operator against the current kubeconfig")
    operator.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable; default: all)",
    )
    operator.add_argument("--verbose", action="store_true", help="log every handler run")
    metrics_port = os.environ.get("THRIFTY_METRICS_PORT")
    operator.add_argument(
        "--metrics-port",
        type=int,
        default=int(metrics_port) if metrics_port else None,
        help="serve the operator's Prometheus metrics on this port (default $THRIFTY_METRICS_PORT, else none)",
    )
    operator.add_argument(
        "--liveness", default=None, help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz"
    )


def _run_operator(args: argparse.Namespace) -> int:
    import kopf

    import thrifty.handlers  # registers the handlers

    thrifty.handlers.watch_namespaces(args.namespace)
    kopf.configure(verbose=args.verbose)
    if args.metrics_port is not None:
        import prometheus_client

        prometheus_client.start_http_server(args.metrics_port)
    kopf.run(
        standalone=True,  # one replica (Recreate strategy): no peering objects needed
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness,
    )
    return 0


def _crds_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    crds = commands.add_parser("crds", help="write the CRD YAML generated from the API models")
    crds.add_argument(
        "--out", type=Path, default=Path("crds"), help="directory to write into (default: crds)"
    )
    crds.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when a file in --out is missing or stale"
    )


def _run_crds(args: argparse.Namespace) -> int:
    from thrifty.api import crd_files

    stale = []
    for name, text in crd_files().items():
        path = args.out / name
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            args.out.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if args.check and stale:
        names = ", ".join(str(path) for path in stale)
        print(f"thrifty: stale or missing: {names}; run `thrifty crds --out {args.out}`", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["router"]:
        # The router is its own program with its own flags: hand it the rest of the line.
        if args_in[1:2] == ["train"]:
            from thrifty.router import train

            return train.main(args_in[2:])
        from thrifty.router import main as router_main

        return router_main.run(args_in[1:])
    parser = argparse.ArgumentParser(prog="thrifty", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "router", help="the OpenAI-compatible router (`thrifty router --help`, `thrifty router train`)"
    )
    _operator_parser(commands)
    twin_cli.add_parser(commands)
    _testbed_parser(commands)
    _crds_parser(commands)
    args = parser.parse_args(args_in)
    if args.command == "crds":
        return _run_crds(args)
    if args.command == "operator":
        return _run_operator(args)
    if args.command == "twin":
        return twin_cli.run(args)
    try:
        if args.command == "testbed":
            return _run_testbed(args)
    except TestbedError as error:
        print(f"thrifty: {error}", file=sys.stderr)
        return 1
    parser.error(f"unknown command {args.command}")
    return 2
