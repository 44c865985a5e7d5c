"""Part (b): what the router adds. The real router process (`thrifty router`) on one core in front
of a twin on 127.0.0.1, a load generator on loopback, and the same load sent to the twin directly.

- Added latency: open-loop load at fixed rates (requests sent on schedule, latency counted from
  the scheduled send, so a slow server cannot hide its queue); the router's p50/p99 minus the
  direct p50/p99 at the same rate.
- Router CPU per request: CPU seconds the router process used during a fixed-rate phase over the
  requests it forwarded; one core's worth of it is the most the router can forward per second.
- Maximum rate: closed-loop load (many clients, each sending its next request when the last
  answers) through the router, pinned to one core, for a few seconds.

Requests are chat completions of about 1 KB (about 300 tokens) from 200 conversations, with
`max_tokens: 1`, against a twin of Llama-3.2-1B on an H100: each conversation's opening stays in the
twin's prefix cache, so the simulated GPU answers in a few milliseconds and never limits the rate.

    python -m bench.router.overhead --rates 250,500,1000 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import uvloop

from thrifty.twin import TwinServer, engine_config_from_vllm_args, percentile

MODEL = "meta-llama/Llama-3.2-1B-Instruct"
SERVED = "llama-1b"
GPU = "NVIDIA-H100-80GB-HBM3"
CONVERSATIONS = 200
LOAD_GENERATORS = 4
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet")


@dataclass
class Phase:
    target: str
    """`direct` or `router`."""
    rate: float
    """Requests per second offered (0: closed loop)."""
    sent: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    wall_s: float = 0.0
    router_cpu_s: float | None = None

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    @property
    def achieved_rate(self) -> float:
        return len(self.latencies_ms) / self.wall_s if self.wall_s > 0 else math.nan


def conversation_bodies(count: int, *, seed: int = 0) -> list[bytes]:
    """Request bodies of about 1 KB: a turn of one of `CONVERSATIONS` conversations, each the
    conversation's fixed opening (which the twin's prefix cache soon holds) and a new question,
    so that the twin's simulated GPU does little per request and the rig, not the twin, is tested."""
    rng = random.Random(seed)
    openings = [" ".join(rng.choice(WORDS) for _ in range(120)) for _ in range(CONVERSATIONS)]
    bodies = []
    for _ in range(count):
        conversation = rng.randrange(CONVERSATIONS)
        messages = [
            {"role": "system", "content": f"You are assistant {conversation}."},
            {"role": "user", "content": openings[conversation]},
            {"role": "assistant", "content": "noted"},
            {"role": "user", "content": " ".join(rng.choice(WORDS) for _ in range(10))},
        ]
        bodies.append(json.dumps({"model": SERVED, "messages": messages, "max_tokens": 1}).encode())
    return bodies


async def open_loop(
    session: aiohttp.ClientSession,
    urls: Sequence[str],
    bodies: Sequence[tuple[int, bytes]],
    rate: float,
    phase: Phase,
    *,
    start: float | None = None,
) -> None:
    """Send each `(index, body)` at `start + index / rate` (a fixed schedule) to `urls[index % n]`.
    Latency counts from the scheduled time, so a slow server cannot hide its queue."""
    # perf_counter, not the loop's clock: uvloop's ticks in whole milliseconds. It is the
    # system's monotonic clock, so load generators in several processes share one schedule.
    clock = time.perf_counter
    start = clock() + 0.05 if start is None else start

    async def one(url: str, body: bytes, due: float) -> None:
        await asyncio.sleep(max(0.0, due - clock()))
        try:
            async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
                await response.read()
                ok = response.status == 200
        except (aiohttp.ClientError, OSError):
            ok = False
        if ok:
            phase.latencies_ms.append((clock() - due) * 1000)
        else:
            phase.errors += 1

    tasks = [
        asyncio.create_task(one(urls[index % len(urls)], body, start + index / rate))
        for index, body in bodies
    ]
    phase.sent = len(bodies)
    await asyncio.gather(*tasks)
    phase.wall_s = clock() - start


@dataclass(frozen=True)
class LoadShare:
    """What one load-generator process sends in a phase: every n-th request of the schedule."""

    urls: tuple[str, ...]
    bodies: tuple[tuple[int, bytes], ...]
    rate: float
    start: float
    core: int | None


def _generate(share: LoadShare) -> tuple[list[float], int, float]:
    """One load-generator process: warm its connections, then send its share on the common
    schedule; returns (latencies in ms, errors, seconds from the start to its last answer)."""
    if share.core is not None:
        os.sched_setaffinity(0, {share.core})

    async def run() -> tuple[list[float], int, float]:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            warm = [(index, body) for index, body in enumerate(conversation_bodies(64, seed=98))]
            await open_loop(session, share.urls, warm, 200, Phase("warmup", 200))
            phase = Phase("share", share.rate)
            await open_loop(session, share.urls, share.bodies, share.rate, phase, start=share.start)
            return phase.latencies_ms, phase.errors, phase.wall_s

    return uvloop.run(run())


async def spread_open_loop(
    pool: ProcessPoolExecutor | None,
    cores: Sequence[int | None],
    urls: Sequence[str],
    bodies: Sequence[bytes],
    rate: float,
    phase: Phase,
    session: aiohttp.ClientSession,
) -> None:
    """The open-loop schedule, sent by one process per core in `cores` (each takes every n-th
    request), so that at 1,000 requests/s the load generator is not what sets the tail."""
    indexed = list(enumerate(bodies))
    if pool is None:
        await open_loop(session, urls, indexed, rate, phase)
        return
    start = time.perf_counter() + 2.0  # after every process has warmed its connections
    shares = [
        LoadShare(tuple(urls), tuple(indexed[k :: len(cores)]), rate, start, core)
        for k, core in enumerate(cores)
    ]
    loop = asyncio.get_running_loop()
    results = await asyncio.gather(*(loop.run_in_executor(pool, _generate, share) for share in shares))
    for latencies, errors, wall_s in results:
        phase.latencies_ms.extend(latencies)
        phase.errors += errors
        phase.wall_s = max(phase.wall_s, wall_s)
    phase.sent = len(bodies)


async def closed_loop(
    session: aiohttp.ClientSession,
    url: str,
    bodies: Sequence[bytes],
    clients: int,
    seconds: float,
    phase: Phase,
) -> None:
    clock = time.perf_counter
    deadline = clock() + seconds
    start = clock()
    counter = iter(range(1 << 40))

    async def client() -> None:
        while clock() < deadline:
            body = bodies[next(counter) % len(bodies)]
            sent = clock()
            try:
                async with session.post(
                    url, data=body, headers={"Content-Type": "application/json"}
                ) as response:
                    await response.read()
                    ok = response.status == 200
            except (aiohttp.ClientError, OSError):
                ok = False
            if ok:
                phase.latencies_ms.append((clock() - sent) * 1000)
            else:
                phase.errors += 1

    await asyncio.gather(*(client() for _ in range(clients)))
    phase.wall_s = clock() - start
    phase.sent = len(phase.latencies_ms) + phase.errors


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def _pinned(command: list[str], core: int | None) -> list[str]:
    if core is None or shutil.which("taskset") is None:
        return command
    return ["taskset", "-c", str(core), *command]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_http(url: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {seconds:g}s")
            await asyncio.sleep(0.1)


def router_config(twin_port: int) -> dict[str, object]:
    return {
        "name": "bench",
        "namespace": "bench",
        "spec": {"tiers": [{"name": "small", "model": SERVED}]},
        "models": {SERVED: {"service": SERVED, "servedName": SERVED, "port": twin_port}},
    }


@dataclass
class OverheadResult:
    cores: int
    pinned: bool
    twins: int
    phases: list[Phase]
    max_rate: Phase
    cpu_us_per_request: float
    clients: int

    def added_ms(self, rate: float, q: float) -> float:
        direct = next(p for p in self.phases if p.target == "direct" and p.rate == rate)
        routed = next(p for p in self.phases if p.target == "router" and p.rate == rate)
        return routed.p(q) - direct.p(q)


def _log(message: str) -> None:
    print(f"[overhead] {message}", file=sys.stderr, flush=True)


def _layout(cores: int) -> tuple[int | None, list[int | None], set[int] | None]:
    """Cores for the router, each twin, and the load generator.

    With four CPUs or more the router gets a core of its own (the measurement is of one core),
    the twins and the load generator share the rest; with six or more, up to four twins get one
    each, so that the twins are not what limits the closed-loop rate.
    """
    if cores < 4 or shutil.which("taskset") is None:
        # Two CPUs cannot hold a pinned router beside a twin and a load generator: sharing one core,
        # those two wait on each other and the direct path measures the scheduler, not the twin.
        return None, [None], None
    twins = min(4, (cores - 2) // 2)
    return 0, [1 + index for index in range(twins)], set(range(1 + twins, cores))


async def measure(rates: Sequence[float], seconds: float, clients: int, max_seconds: float) -> OverheadResult:
    cores = os.cpu_count() or 1
    router_core, twin_cores, loadgen_cores = _layout(cores)
    if loadgen_cores is not None:
        os.sched_setaffinity(0, loadgen_cores)
    # Open-loop phases are sent by up to four processes of their own, one core each, where the
    # machine has the cores; on a small machine, by this process.
    generator_cores: list[int | None] = sorted(loadgen_cores or [])[:LOAD_GENERATORS]
    spawn = multiprocessing.get_context("spawn")  # a fork would copy the running event loop
    pool = ProcessPoolExecutor(len(generator_cores), mp_context=spawn) if len(generator_cores) > 1 else None
    twin_ports = [_free_port() for _ in twin_cores]
    router_port = _free_port()
    twins = [
        subprocess.Popen(
            _pinned([sys.executable, "-m", "bench.router.overhead", "--serve-twin", str(port)], core),
            stdout=subprocess.DEVNULL,
        )
        for port, core in zip(twin_ports, twin_cores, strict=True)
    ]
    addresses = ",".join(f"127.0.0.1:{port}" for port in twin_ports)
    _log(
        f"{cores} cores: router on core {router_core}, twins on {twin_cores}, load generator on {sorted(loadgen_cores or [])}"
    )
    workdir = Path(tempfile.mkdtemp(prefix="thrifty-router-bench-"))
    config = workdir / "router.json"
    config.write_text(json.dumps(router_config(twin_ports[0])))
    router = subprocess.Popen(
        _pinned(
            [
                sys.executable,
                "-m",
                "thrifty.router.main",
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(router_port),
                "--endpoints",
                f"{SERVED}={addresses}",
                "--log-level",
                "warning",
            ],
            router_core,
        ),
    )
    phases: list[Phase] = []
    session: aiohttp.ClientSession | None = None
    try:
        for port in twin_ports:
            await _wait_http(f"http://127.0.0.1:{port}/health")
        await _wait_http(f"http://127.0.0.1:{router_port}/health")
        direct_urls = [f"http://127.0.0.1:{port}/v1/chat/completions" for port in twin_ports]
        router_urls = [f"http://127.0.0.1:{router_port}/v1/chat/completions"]
        # One client pool for every phase, warmed on both paths, so that neither pays for
        # opening connections while it is measured.
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        warm = list(enumerate(conversation_bodies(400, seed=99)))
        for urls in (direct_urls, router_urls):
            await open_loop(session, urls, warm, 200, Phase("warmup", 200))
        for rate in rates:
            if phases and any(p.achieved_rate < 0.8 * p.rate or p.errors for p in phases[-2:]):
                _log(f"skipping {rate:.0f}/s and above: the rig did not carry {phases[-1].rate:.0f}/s")
                break
            bodies = conversation_bodies(int(rate * seconds), seed=int(rate))
            for target, urls in (("direct", direct_urls), ("router", router_urls)):
                phase = Phase(target, rate)
                cpu_before = _cpu_seconds(router.pid)
                await spread_open_loop(pool, generator_cores, urls, bodies, rate, phase, session)
                if target == "router":
                    phase.router_cpu_s = _cpu_seconds(router.pid) - cpu_before
                phases.append(phase)
                _log(
                    f"{target:6s} {rate:6.0f}/s: p50 {phase.p(50):6.2f} ms  p99 {phase.p(99):6.2f} ms  "
                    f"errors {phase.errors}  achieved {phase.achieved_rate:6.0f}/s"
                )
        saturating = Phase("router", 0)
        cpu_before = _cpu_seconds(router.pid)
        await closed_loop(
            session, router_urls[0], conversation_bodies(20_000, seed=7), clients, max_seconds, saturating
        )
        saturating.router_cpu_s = _cpu_seconds(router.pid) - cpu_before
        _log(
            f"closed loop, {clients} clients: {saturating.achieved_rate:.0f} requests/s through the router, "
            f"router CPU {saturating.router_cpu_s / saturating.wall_s:.0%} of a core"
        )
    finally:
        if pool is not None:
            pool.shutdown()
        if session is not None:
            await session.close()
        for process in (router, *twins):
            process.send_signal(signal.SIGTERM)
        for process in (router, *twins):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    routed = [p for p in phases if p.target == "router" and p.router_cpu_s is not None]
    cpu_per_request = sum(p.router_cpu_s or 0.0 for p in routed) / max(
        1, sum(len(p.latencies_ms) for p in routed)
    )
    return OverheadResult(
        cores, router_core is not None, len(twin_ports), phases, saturating, cpu_per_request * 1e6, clients
    )


async def _serve_twin(port: int) -> None:
    config = engine_config_from_vllm_args(
        {"model_tag": MODEL, "served_model_name": [SERVED], "max_model_len": 8192}, gpu_product=GPU
    )
    server = TwinServer(config, host="127.0.0.1", port=port, load_seconds=0.0)
    await server.start()
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    await stopped.wait()
    await server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.router.overhead", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rates", default="250,500,1000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--max-seconds", type=float, default=8.0)
    parser.add_argument("--serve-twin", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_twin is not None:
        uvloop.run(_serve_twin(args.serve_twin))
        return 0
    rates = [float(rate) for rate in args.rates.split(",")]
    # The rig (load generator, twins) on uvloop too, so that its own tail stays below the router's.
    result = uvloop.run(measure(rates, args.seconds, args.clients, args.max_seconds))
    for rate in sorted({phase.rate for phase in result.phases}):
        print(
            f"{rate:.0f}/s: added p50 {result.added_ms(rate, 50):.2f} ms, p99 {result.added_ms(rate, 99):.2f} ms"
        )
    print(
        f"router CPU per request {result.cpu_us_per_request:.0f} us; closed-loop {result.max_rate.achieved_rate:.0f}/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
