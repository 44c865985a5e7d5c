"""`make demo`: the product tour, on the local testbed.

1. install Thrifty with Helm (the testbed runs the chart's operator pod as the real operator);
2. apply the example models and the example router;
3. replay a short stretch of the Mooncake conversation trace through the router, with a live
   table of replicas, utilization, caps, tier split, cost and each decision with its reason;
4. write a PNG summary of the run.

It runs inside the testbed's network namespace (`thrifty testbed shell -- python -m demo`), where
pod IPs are local addresses.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config

from demo.dashboards import missing_metrics
from demo.summary import Snapshot, write_summary
from demo.table import model_row, render, tier_rows
from demo.traffic import Result, replay, requests_from_trace
from thrifty.testbed.commands import default_state_dir, read_state

REPO = Path(__file__).resolve().parents[1]
RELEASE, OPERATOR_NAMESPACE, NAMESPACE = "thrifty", "thrifty-system", "models"
MODELS = sorted((REPO / "examples").glob("*.yaml"))
ROUTER = REPO / "examples" / "routers" / "assistant.yaml"
TRACE = REPO / "bench" / "traces" / "mooncake-conversation.jsonl"


def step(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def run(*argv: str, stdin: str | None = None) -> str:
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed:\n{result.stderr or result.stdout}")
    return result.stdout


def install(prometheus: str) -> None:
    # Demo-speed control loop: a step every 5 s and policy durations (cooldowns, evidence windows)
    # compressed tenfold, so that decisions show within the few minutes of the tour.
    started = time.monotonic()
    run(
        "helm", "upgrade", "--install", RELEASE, str(REPO / "charts" / "thrifty"),
        "--namespace", OPERATOR_NAMESPACE, "--create-namespace", "--wait", "--timeout", "3m",
        "--set", f"operator.prometheusUrl={prometheus}",
        "--set", "operator.resyncSeconds=10",
        "--set", "operator.controlSeconds=5",
        "--set-json", 'operator.extraEnv=[{"name":"THRIFTY_CONTROL_TIME_SCALE","value":"0.1"}]',
    )  # fmt: skip
    print(f"installed in {time.monotonic() - started:.0f}s; the operator pod is Ready (its /healthz answers)")
    print(run("kubectl", "get", "deploy,pods", "-n", OPERATOR_NAMESPACE).rstrip())


def apply_examples(custom: Any) -> None:
    run(
        "kubectl",
        "apply",
        "-f",
        "-",
        stdin=run("kubectl", "create", "namespace", NAMESPACE, "--dry-run=client", "-o", "yaml"),
    )
    secret = run(
        "kubectl", "create", "secret", "generic", "hf-token", "-n", NAMESPACE,
        "--from-literal=token=hf_demo", "--dry-run=client", "-o", "yaml",
    )  # fmt: skip
    run("kubectl", "apply", "-f", "-", stdin=secret)
    for path in [*MODELS, ROUTER]:
        print(run("kubectl", "apply", "-f", str(path)).rstrip())
    started = time.monotonic()
    while True:
        waiting = [
            f"{kind} {body['metadata']['name']}"
            for kind, bodies in (
                ("model", _list(custom, "inferencemodels")),
                ("router", _list(custom, "inferencerouters")),
            )
            for body in bodies
            if not _ready(body)
        ]
        if not waiting:
            break
        if time.monotonic() - started > 300:
            raise SystemExit(f"not Ready after 5 minutes: {', '.join(waiting)} (kubectl describe them)")
        print(
            f"\r  {time.monotonic() - started:4.0f}s waiting for {', '.join(waiting)}\033[K",
            end="",
            flush=True,
        )
        time.sleep(1)
    print(f"\r  every model and the router are Ready after {time.monotonic() - started:.0f}s\033[K")
    print(run("kubectl", "get", "im,ir", "-n", NAMESPACE).rstrip())


def _list(custom: Any, plural: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = custom.list_namespaced_custom_object(
        "thrifty.dev", "v1alpha1", NAMESPACE, plural
    )["items"]
    return sorted(items, key=lambda body: body["metadata"]["name"])


def _ready(body: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in (body.get("status") or {}).get("conditions") or []
    )


def router_address(core: Any) -> str:
    pods = core.list_namespaced_pod(NAMESPACE, label_selector="thrifty.dev/router=assistant").items
    ready = [
        p
        for p in pods
        if p.status.pod_ip
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    ]
    if not ready:
        raise SystemExit("the router has no Ready pod")
    return f"{ready[0].status.pod_ip}:8000"


async def tour_traffic(
    custom: Any, address: str, seconds: float, speedup: float
) -> tuple[list[Snapshot], list[Result]]:
    requests = requests_from_trace(TRACE, seconds=seconds, speedup=speedup)
    results: list[Result] = []
    snapshots: list[Snapshot] = []
    interactive = sys.stdout.isatty()
    started = time.monotonic()
    traffic = asyncio.create_task(replay(address, requests, results.append))
    last_print = 0.0
    while True:
        models = await asyncio.to_thread(_list, custom, "inferencemodels")
        routers = await asyncio.to_thread(_list, custom, "inferencerouters")
        elapsed = time.monotonic() - started
        rows = [model_row(body) for body in models]
        snapshots.append((elapsed, rows))
        screen = render(
            rows,
            tier_rows(routers[0], results) if routers else [],
            elapsed_s=elapsed,
            total_s=requests[-1].at_s if requests else 0,
            sent=len(results),
            answered=sum(1 for r in results if r.status == 200),
            failed=sum(1 for r in results if r.status != 200),
        )
        if interactive:
            print("\033[H\033[2J" + screen, flush=True)
        elif elapsed - last_print >= 15 or traffic.done():
            print(screen + "\n", flush=True)
            last_print = elapsed
        if traffic.done():
            break
        await asyncio.sleep(2)
    await traffic
    return snapshots, results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--seconds", type=float, default=120, help="demo seconds of trace to replay (default 120)"
    )
    parser.add_argument("--speedup", type=float, default=1.0, help="replay the trace this many times faster")
    parser.add_argument("--output", type=Path, default=REPO / "demo-output", help="where the PNG goes")
    parser.add_argument("--prometheus", help="the testbed's Prometheus (default: from `thrifty testbed up`)")
    args = parser.parse_args(argv)
    if os.environ.get("THRIFTY_NETNS") != "1" or not os.environ.get("KUBECONFIG"):
        print(
            "run the demo with `make demo` (it runs inside the testbed's network namespace)", file=sys.stderr
        )
        return 2
    prometheus = args.prometheus or (read_state(default_state_dir()) or {}).get("prometheus")
    if not prometheus:
        print("the testbed is not up: `make demo` starts it", file=sys.stderr)
        return 2
    api = config.new_client_from_config(config_file=os.environ["KUBECONFIG"])  # type: ignore[no-untyped-call]
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)

    step("1/4 Installing Thrifty with Helm (charts/thrifty)")
    install(prometheus)
    step("2/4 Applying the example models and the example router (examples/)")
    apply_examples(custom)
    step(f"3/4 Replaying {args.seconds:.0f}s of the Mooncake conversation trace through the router")
    snapshots, results = asyncio.run(tour_traffic(custom, router_address(core), args.seconds, args.speedup))
    step("4/4 Summary")
    answered = [r for r in results if r.status == 200]
    split = {tier: sum(1 for r in answered if r.tier == tier) for tier in sorted({r.tier for r in answered})}
    print(json.dumps({"requests": len(results), "answered": len(answered), "tiers": split,
                      "escalated": sum(1 for r in answered if r.escalated_from)}))  # fmt: skip
    png = write_summary(args.output / "summary.png", snapshots, results)
    print(f"wrote {png}")
    wanted, missing = missing_metrics(prometheus)
    if missing:
        print(
            f"dashboards: {len(missing)} of {len(wanted)} metric names are not in Prometheus: {', '.join(missing)}"
        )
    else:
        print(
            f"dashboards: all {len(wanted)} metric names their queries use exist in the testbed's Prometheus"
        )
    print("\nthe testbed stays up: `make shell` then `kubectl get im,ir -n models`, `kubectl describe im llama-8b`;"
          " `make down` to stop it")  # fmt: skip
    return 1 if missing else 0
