"""`thrifty router`: run the router process.

    thrifty router --config /etc/thrifty/router/router.json
    thrifty router --config router.json --endpoints llama-8b=127.0.0.1:8001,127.0.0.1:8002

In a pod it discovers replicas by watching the EndpointSlices of its tiers' Services (the pod's
service account needs list and watch on discovery.k8s.io endpointslices in its namespace);
`--endpoints` replaces discovery with fixed addresses (development, benchmarks). The
configuration and classifier files are re-read when they change.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from thrifty.api import RouterConfig
from thrifty.router.classifier import ClassifierError, TierClassifier
from thrifty.router.config import ConfigError, load_config

if TYPE_CHECKING:  # the server's modules load only when the router runs, not for `thrifty --help`
    from thrifty.k8s.endpoints import ReadyAddresses
    from thrifty.router.app import Router

log = logging.getLogger("thrifty.router")

DEFAULT_CONFIG = Path("/etc/thrifty/router/router.json")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="thrifty router", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `thrifty router`, for cli.py to put on its subcommand."""
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help=f"router.json (default {DEFAULT_CONFIG})"
    )
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default all)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    parser.add_argument(
        "--endpoints",
        action="append",
        default=[],
        metavar="SERVICE=HOST:PORT[,HOST:PORT...]",
        help="fixed replicas of a Service instead of EndpointSlice discovery (repeatable)",
    )
    parser.add_argument(
        "--reload-interval", type=float, default=2.0, help="seconds between checks of the config files"
    )
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))


def parse_endpoints(values: list[str]) -> ReadyAddresses:
    """`["svc=10.0.0.1:8000,10.0.0.2:8000"]` -> {"svc": ("10.0.0.1:8000", "10.0.0.2:8000")}."""
    ready: dict[str, tuple[str, ...]] = {}
    for value in values:
        service, separator, addresses = value.partition("=")
        if not separator or not service or not addresses:
            raise ValueError(f"--endpoints {value!r}: write SERVICE=HOST:PORT[,HOST:PORT...]")
        ready[service] = tuple(sorted(address.strip() for address in addresses.split(",") if address.strip()))
    return ready


def load_classifier(config: RouterConfig) -> TierClassifier | None:
    if config.spec.selection.classifier is None or config.classifier_path is None:
        return None
    path = Path(config.classifier_path)
    try:
        return TierClassifier.from_json(path.read_text())
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the classifier: {error.strerror or error}") from None
    except ClassifierError as error:
        raise ConfigError(f"{path}: {error}") from None


def _signature(path: Path | None) -> bytes | None:
    """A digest of the file's content. Content rather than mtime: a ConfigMap update swaps the
    volume's ..data symlink atomically, and an edit may keep the size and land within the
    filesystem's timestamp granularity."""
    if path is None:
        return None
    try:
        return hashlib.blake2b(path.read_bytes(), digest_size=16).digest()
    except OSError:
        return None


async def watch_config(router: Router, path: Path, interval_s: float) -> None:
    """Re-read the configuration (and classifier) file when it changes; keep the last good one.

    The first check always reloads, so a change made between start-up and the watch is not missed.
    """

    def classifier_path() -> Path | None:
        return Path(router.config.classifier_path) if router.config.classifier_path else None

    seen: tuple[bytes | None, bytes | None] | None = None
    while True:
        now = (_signature(path), _signature(classifier_path()))
        if now != seen:
            seen = now
            try:
                config = load_config(path)
                classifier = load_classifier(config)
            except ConfigError as error:
                router.metrics.config_reloads.labels("invalid").inc()
                log.error("configuration not reloaded, the last good one stays in force: %s", error)
            else:
                router.apply_config(config, classifier)
                router.metrics.config_reloads.labels("ok").inc()
                log.info("configuration loaded (generation %s)", config.generation)
        await asyncio.sleep(interval_s)


def _start_discovery(router: Router, static: ReadyAddresses) -> Callable[[], None]:
    if static:
        router.apply_endpoints(static)
        return lambda: None
    from thrifty.k8s.client import api_client
    from thrifty.k8s.endpoints import EndpointSliceWatcher

    loop = asyncio.get_running_loop()

    def publish(ready: ReadyAddresses) -> None:
        loop.call_soon_threadsafe(router.apply_endpoints, ready)

    watcher = EndpointSliceWatcher(api_client(), router.config.namespace, on_change=publish)
    watcher.start()
    return watcher.stop


async def serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from thrifty.router.app import Router, build_app

    try:
        static = parse_endpoints(args.endpoints)
        config = load_config(args.config)
        classifier = load_classifier(config)
    except (ConfigError, ValueError) as error:
        print(f"thrifty router: {error}", file=sys.stderr)
        return 2
    waker = None
    if not static:
        from thrifty.router.wake import WakeRequester, kubernetes_patch

        waker = WakeRequester(kubernetes_patch(config.namespace))
    router = Router(config, classifier, waker)
    app = build_app(router)
    # Cancel a handler whose client went away: its replica is then told (the upstream
    # connection closes) instead of generating an answer nobody reads.
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, backlog=1024)
    await site.start()
    stop_discovery = _start_discovery(router, static)
    reloader = asyncio.get_running_loop().create_task(watch_config(router, args.config, args.reload_interval))
    log.info(
        "router %s/%s listening on %s:%s; tiers %s",
        config.namespace,
        config.name,
        args.host,
        args.port,
        ", ".join(f"{tier.name}={tier.backend.service}" for tier in router.tiers),
    )
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    await stopped.wait()
    reloader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reloader
    stop_discovery()
    await runner.cleanup()
    return 0


def run(argv: list[str] | None = None) -> int:
    """Entry point of `thrifty router` (also `python -m thrifty.router.main`)."""
    return run_parsed(parser().parse_args(argv))


def run_parsed(args: argparse.Namespace) -> int:
    """Run with arguments already parsed by a parser that `add_arguments` filled."""
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # uvloop's event loop (libuv) forwards a request with about half the CPU of asyncio's own;
    # the router's one-core rate depends on it (bench/router/overhead.py).
    import uvloop

    return uvloop.run(serve(args))


if __name__ == "__main__":
    sys.exit(run())
