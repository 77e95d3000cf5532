"""The discovery benchmark (see the package docstring).

1. Dead-instance detection: a real broker process; for each heartbeat setting a child
   process runs ``--instances`` services, is SIGKILLed, and the registry is read every
   ``--poll`` seconds until each instance is gone. Detection time = gone - killed; expected
   between 2 and 3 heartbeats (expiry is 3 missed beats after the last one) plus a read.
2. Balancing: four HTTP instances (child processes), one of them ``--slow-factor`` times
   slower; ``--requests`` calls at ``--concurrency`` through the registry-resolving httpx
   transport, once with round-robin, once with P2C peak-EWMA; latency p50/p99 and the slow
   instance's share.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from ..procs import free_port, wait_until
from ..stats import percentile


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tidings bench discovery", description=__doc__)
    p.add_argument("--heartbeats", default="0.5,1,2", help="heartbeat settings, seconds")
    p.add_argument("--instances", type=int, default=8, help="instances killed per setting")
    p.add_argument("--rounds", type=int, default=2, help="kills per heartbeat setting")
    p.add_argument("--poll", type=float, default=0.05, help="registry read period, seconds")
    p.add_argument("--requests", type=int, default=2000, help="calls per balancer")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--work", type=float, default=0.005, help="a good instance's work, s")
    p.add_argument("--slow-factor", type=float, default=10.0)
    p.add_argument("--quick", action="store_true", help="fewer samples (a minute or so)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[3])
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
    }


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Broker:
    def __init__(self, data: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tidings.server", "--port", str(self.port), "--data", data,
             "--http", "off", "--log-level", "WARNING"],
            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        from ..procs import port_open

        wait_until(lambda: port_open(self.port), 30, "the broker start")
        self.url = f"tidings://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


async def detection(url: str, heartbeat: float, count: int, poll: float) -> list[float]:
    from ...client import AsyncClient
    from ...client.registry import Registry

    child = subprocess.Popen(
        [sys.executable, "-m", "tidings.benchmarking.discovery.dying", url, str(heartbeat),
         str(count)],
        env=_env(), stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None  # stdout=PIPE
        line = await asyncio.to_thread(child.stdout.readline)
        if not line.startswith("ready"):
            raise RuntimeError("the dying services did not start")
        ids = set(line.split()[1:])
        await asyncio.sleep(heartbeat * 1.5)  # every instance has beaten at least once more
        async with AsyncClient(url) as client:
            registry = Registry(client)
            child.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            child.wait(10)
            gone: dict[str, float] = {}
            while len(gone) < len(ids) and time.monotonic() - killed < heartbeat * 10 + 10:
                live = {i.id for i in await registry.instances(ask=False)}
                now = time.monotonic()
                for iid in ids - live - set(gone):
                    gone[iid] = now - killed
                await asyncio.sleep(poll)
        return sorted(gone.values())
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)


class HttpInstance:
    def __init__(self, name: str, delay: float) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tidings.benchmarking.discovery.http_instance", name,
             str(delay), "0", str(self.port)],
            env=_env(),
        )  # fmt: skip

    def up(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/up", timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


async def _drive(
    http: Any, total: int, concurrency: int
) -> tuple[list[float], dict[str, int], float]:
    latencies: list[float] = []
    calls: dict[str, int] = {}
    todo = iter(range(total))

    async def worker() -> None:
        for _ in todo:
            t0 = time.perf_counter()
            r = await http.get("http://bench-http/work")
            latencies.append(time.perf_counter() - t0)
            who = r.json()["instance"]
            calls[who] = calls.get(who, 0) + 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sorted(latencies), calls, time.perf_counter() - t0


async def balancing(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    from ...client import AsyncClient
    from ...client.registry import Registry
    from ...discovery import OutlierEjection, PeakEwma, RoundRobin
    from ...discovery.http import DiscoveryTransport

    instances = [HttpInstance(f"fast-{i}", args.work) for i in (1, 2, 3)]
    rows = []
    try:
        for inst in instances:
            await asyncio.to_thread(wait_until, inst.up, 30, f"instance {inst.name} start")
        async with AsyncClient("memory://bench-discovery") as client:
            registry = Registry(client)
            for inst in instances:
                await registry.register("bench-http", inst.url, id=inst.name)
            # calibrate: "10x slower" is 10x what a fast instance's call takes on this machine
            transport = DiscoveryTransport(client, balancer=RoundRobin())
            async with httpx.AsyncClient(transport=transport) as http:
                observed, _, _ = await _drive(http, 200, args.concurrency)
            fast_p50 = percentile(observed, 50)
            slow = HttpInstance("slow", fast_p50 * args.slow_factor)
            instances.append(slow)
            await asyncio.to_thread(wait_until, slow.up, 30, "the slow instance start")
            await registry.register("bench-http", slow.url, id="slow")
            for label, balancer in (
                ("round-robin", RoundRobin(ejection=OutlierEjection(consecutive=10**9))),
                ("p2c-peak-ewma", PeakEwma()),
                ("p2c-peak-ewma decay=2s", PeakEwma(decay=2.0)),
            ):
                transport = DiscoveryTransport(client, balancer=RoundRobin())
                async with httpx.AsyncClient(transport=transport) as http:
                    await _drive(http, 40, args.concurrency)  # open the connections first
                    transport.balancer = balancer
                    latencies, calls, took = await _drive(http, args.requests, args.concurrency)
                rows.append({
                    "balancer": label,
                    "requests": args.requests,
                    "p50_ms": percentile(latencies, 50) * 1000,
                    "p99_ms": percentile(latencies, 99) * 1000,
                    "slow_share": calls.get("slow", 0) / args.requests,
                    "rate": args.requests / took,
                })  # fmt: skip
    finally:
        for inst in instances:
            inst.stop()
    return {"fast_p50_ms": fast_p50 * 1000, "slow_delay_ms": fast_p50 * args.slow_factor * 1000,
            "rows": rows}  # fmt: skip


async def run(args: argparse.Namespace) -> dict[str, Any]:
    heartbeats = [float(h) for h in args.heartbeats.split(",") if h.strip()]
    detect_rows = []
    with tempfile.TemporaryDirectory(prefix="tidings-bench-discovery-") as data:
        broker = Broker(data)
        try:
            for hb in heartbeats:
                samples: list[float] = []
                for _ in range(args.rounds):
                    samples += await detection(broker.url, hb, args.instances, args.poll)
                    _log(f"heartbeat {hb}s: {len(samples)} detections")
                samples.sort()
                detect_rows.append({
                    "heartbeat": hb,
                    "expiry": hb * 3,
                    "samples": len(samples),
                    "p50_s": percentile(samples, 50) if samples else None,
                    "p99_s": percentile(samples, 99) if samples else None,
                    "max_s": max(samples) if samples else None,
                })  # fmt: skip
        finally:
            broker.stop()
    balance_rows = await balancing(args)
    return {"detection": detect_rows, "balancing": balance_rows, "slow_factor": args.slow_factor}


def render(result: dict[str, Any]) -> str:
    lines = ["## Dead-instance detection (SIGKILL -> gone from the registry)", "",
             "| heartbeat (s) | expiry (s) | samples | p50 (s) | p99 (s) | max (s) |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["detection"]:
        lines.append(
            f"| {r['heartbeat']} | {r['expiry']} | {r['samples']} | {r['p50_s']:.2f} | "
            f"{r['p99_s']:.2f} | {r['max_s']:.2f} |"
        )
    bal = result["balancing"]
    lines += ["", f"## One of four instances slowed {result['slow_factor']:g}x", "",
              f"A fast instance's call takes {bal['fast_p50_ms']:.1f} ms (p50) here; the slow "
              f"one waits {bal['slow_delay_ms']:.0f} ms.", "",
              "| balancer | requests | p50 (ms) | p99 (ms) | slow share | calls/s |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for r in bal["rows"]:
        lines.append(
            f"| {r['balancer']} | {r['requests']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['slow_share']:.1%} | {r['rate']:.0f} |"
        )
    rr, *p2cs = bal["rows"]
    lines.append("")
    for p2c in p2cs:
        if p2c["p99_ms"]:
            ratio = rr["p99_ms"] / p2c["p99_ms"]
            lines.append(f"p99 round-robin / {p2c['balancer']}: {ratio:.1f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.quick:
        args.heartbeats = "0.5,1"
        args.rounds = 1
        args.instances = min(args.instances, 6)
        args.requests = min(args.requests, 600)
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0
