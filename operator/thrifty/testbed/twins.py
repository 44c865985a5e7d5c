"""The twin launcher: a vLLM twin for every vLLM pod on a simulated GPU node, at the pod's own IP.

kwok starts a vLLM pod Running with an IP but not Ready (testbed/kwok-stages.yaml). This process
notices it, parses the pod's own `vllm serve` arguments with the pinned vLLM's argument spec,
starts a twin bound to the pod IP and port, and turns the pod Ready once the twin has "loaded the
model", as the real /health readiness probe would. A pod that goes away stops its twin. Many twins
share this one process and its event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thrifty.testbed.kube import core_api
from thrifty.testbed.nodes import GPU_PRODUCT_LABEL
from thrifty.testbed.pod_readiness import set_pod_ready
from thrifty.twin import TwinConfigError, TwinServer, engine_config_from_vllm_args
from thrifty.vllm_args import InvalidEngineArgs, parse_engine_args

log = logging.getLogger("thrifty.twins")

ENGINE_SELECTOR = "app.kubernetes.io/name=vllm"
FAULT_ANNOTATION = "testbed.thrifty.dev/fault"
"""Set on a vLLM pod, the pod's twin plays an engine that died (the value is the message):
requests answer 500 and /health 500. Removing it heals the twin. Tests use it to fail a tier's
replicas while their endpoints are still listed, as happens before the readiness probe notices."""
STEP_TIME_ANNOTATION = "testbed.thrifty.dev/twin-step-time-scale"
"""Set on a namespace, the twins of the vLLM pods started in it take this many times the calibrated
time per engine step ("1.3": an engine 30% slower than the calibration the operator plans with).
Tests use it to show the control loop correcting its capacity model online."""
POLL_SECONDS = 0.5


def step_time_scale(annotations: dict[str, str] | None) -> float:
    """The namespace's twin step-time scale (1 without the annotation)."""
    raw = (annotations or {}).get(STEP_TIME_ANNOTATION)
    if raw is None:
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"namespace annotation {STEP_TIME_ANNOTATION}: must be a positive number, got {raw!r}"
        )
    return value


@dataclass
class ServedPod:
    uid: str
    namespace: str
    name: str
    ip: str
    server: TwinServer | None = None
    ready_task: asyncio.Task[None] | None = None
    failed: str | None = None


@dataclass
class Launcher:
    """Keeps the set of running twins equal to the set of live vLLM pods."""

    kubeconfig: Path
    load_seconds: float | None = None
    served: dict[str, ServedPod] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.api: Any = core_api(self.kubeconfig)
        self.node_products: dict[str, str] = {}

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                pods = await asyncio.to_thread(self._list_pods)
                await self._sync(pods)
            except Exception:  # the API may blip; keep serving what runs and retry
                log.exception("twin launcher sync failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_SECONDS)
        for uid in list(self.served):
            await self._stop(uid)

    def _list_pods(self) -> list[Any]:
        return list(self.api.list_pod_for_all_namespaces(label_selector=ENGINE_SELECTOR).items)

    async def _sync(self, pods: list[Any]) -> None:
        live = {}
        for pod in pods:
            if pod.metadata.deletion_timestamp or pod.status.phase != "Running" or not pod.status.pod_ip:
                continue
            live[pod.metadata.uid] = pod
        for uid in [uid for uid in self.served if uid not in live]:
            await self._stop(uid)
        for uid, pod in live.items():
            if uid not in self.served:
                await self._start(pod)
            server = self.served[uid].server
            if server is not None:
                fault = (pod.metadata.annotations or {}).get(FAULT_ANNOTATION)
                if fault != server.fault:
                    log.info("%s/%s: fault %r", pod.metadata.namespace, pod.metadata.name, fault)
                    server.fault = fault

    async def _start(self, pod: Any) -> None:
        served = ServedPod(
            uid=pod.metadata.uid,
            namespace=pod.metadata.namespace,
            name=pod.metadata.name,
            ip=pod.status.pod_ip,
        )
        self.served[served.uid] = served
        container = pod.spec.containers[0]
        try:
            product = await asyncio.to_thread(self._gpu_product, pod.spec.node_name)
            config = engine_config_from_vllm_args(
                parse_engine_args(list(container.args or [])), gpu_product=product
            )
            namespace = await asyncio.to_thread(self.api.read_namespace, served.namespace)
            served.server = TwinServer(
                config,
                host=served.ip,
                load_seconds=self.load_seconds,
                step_time_scale=step_time_scale(namespace.metadata.annotations),
            )
            await served.server.start()
        except (InvalidEngineArgs, TwinConfigError, OSError, ValueError) as error:
            served.failed = str(error)
            log.error("no twin for %s/%s: %s", served.namespace, served.name, error)
            return
        log.info("twin for %s/%s serving at %s:%s", served.namespace, served.name, served.ip, config.port)
        served.ready_task = asyncio.create_task(self._mark_ready_when_loaded(served))

    async def _mark_ready_when_loaded(self, served: ServedPod) -> None:
        assert served.server is not None
        await served.server.wait_ready()
        await asyncio.to_thread(self._patch_ready, served)
        log.info("%s/%s Ready: the twin has loaded its model", served.namespace, served.name)

    def _gpu_product(self, node_name: str) -> str:
        if node_name not in self.node_products:
            node = self.api.read_node(node_name)
            self.node_products[node_name] = (node.metadata.labels or {}).get(GPU_PRODUCT_LABEL, "")
        return self.node_products[node_name]

    def _patch_ready(self, served: ServedPod) -> None:
        set_pod_ready(
            self.api.api_client, namespace=served.namespace, name=served.name, uid=served.uid, ready=True
        )

    async def _stop(self, uid: str) -> None:
        served = self.served.pop(uid)
        if served.ready_task is not None:
            served.ready_task.cancel()
        if served.server is not None:
            await served.server.stop()
            log.info("twin for %s/%s stopped", served.namespace, served.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="thrifty testbed twins", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument(
        "--load-seconds",
        type=float,
        default=None,
        help="simulated model load time for every twin (default: from the weights' size)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await Launcher(kubeconfig=args.kubeconfig, load_seconds=args.load_seconds).run(stop)

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
