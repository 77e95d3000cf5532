"""The gateway benchmark's runner (see the package docstring)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from ..postgres import tree_cpu
from ..procs import ServerProcess, free_port, wait_until
from ..stats import percentile
from .apps import TOPIC
from .load import Connection, run_load

SIZES = {  # requests per run, seconds at most per run, concurrency of the throughput runs
    "smoke": (200, 10.0, 8),
    "quick": (3_000, 20.0, 16),
    "full": (20_000, 30.0, 32),
}
BODY = b'{"sku": "apple", "qty": 2}'
EXPECTED = {"sku": "apple", "cents": 500}
LISTENING = re.compile(r"gateway listening on http://([0-9.]+):(\d+)")


class Stack:
    """The broker, the responder, the gateway and the FastAPI endpoint, as child processes."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[ServerProcess] = []

    def _start(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> ServerProcess:
        proc = ServerProcess(argv, self.workdir / f"{name}.log", env).start()
        self.procs.append(proc)
        return proc

    def start(self) -> None:
        py = sys.executable
        port = free_port()
        data = str(self.workdir / "data")
        broker = self._start("broker", [py, "-m", "tidings.server", "--host", "127.0.0.1",
                                        "--port", str(port), "--data", data])  # fmt: skip
        wait_until(lambda: broker.port_ready("the broker", port), 30, "broker")
        self.broker = f"tidings://127.0.0.1:{port}"
        self.responder = self._start("responder", [py, "-m", "tidings.cli", "run",
                                     "tidings.benchmarking.gateway.apps:responder",
                                     "--url", self.broker])  # fmt: skip
        self.gateway = self._start("gateway", [py, "-m", "tidings.cli", "gateway", "--broker",
                                   self.broker, "--port", "0", "--refresh", "0.5"])  # fmt: skip
        match = None

        def listening() -> bool:
            nonlocal match
            self.gateway.check_alive("the gateway")
            match = LISTENING.search(self.gateway.log_path.read_text(errors="replace"))
            return match is not None

        wait_until(listening, 60, "gateway start")
        assert match is not None
        self.gateway_addr = (match.group(1), int(match.group(2)))
        fport = free_port()
        self.fastapi = self._start("fastapi", [py, "-m", "uvicorn",
                                   "tidings.benchmarking.gateway.apps:fastapi_app",
                                   "--host", "127.0.0.1", "--port", str(fport),
                                   "--log-level", "warning", "--no-access-log"],
                                   {"TIDINGS_URL": self.broker})  # fmt: skip
        wait_until(lambda: self.fastapi.port_ready("FastAPI", fport), 60, "FastAPI")
        self.fastapi_addr = ("127.0.0.1", fport)
        wait_until(self._route_known, 60, "the gateway learning POST /v1/quotes")

    def _route_known(self) -> bool:
        self.responder.check_alive("the responder")
        host, port = self.gateway_addr
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/openapi.json", timeout=5) as r:
                return "/v1/quotes" in json.loads(r.read())["paths"]
        except OSError:
            return False

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


async def _http_path(
    addr: tuple[str, int], workers: int, count: int, seconds: float
) -> tuple[list[float], float]:
    conns = [Connection(*addr) for _ in range(workers)]
    await asyncio.gather(*(c.open() for c in conns))

    async def call(w: int) -> None:
        status, body = await conns[w].post("/v1/quotes", BODY)
        if status != 200 or json.loads(body) != EXPECTED:
            raise RuntimeError(f"unexpected answer {status}: {body[:200]!r}")

    try:
        await run_load(call, workers, min(count, 200), seconds)  # warm-up
        return await run_load(call, workers, count, seconds)
    finally:
        await asyncio.gather(*(c.close() for c in conns))


async def _direct_path(
    client: Any, workers: int, count: int, seconds: float
) -> tuple[list[float], float]:
    async def call(w: int) -> None:
        reply = await client.request(TOPIC, BODY, timeout=10)
        if json.loads(reply.body) != EXPECTED:
            raise RuntimeError(f"unexpected reply {reply.body[:200]!r}")

    await run_load(call, workers, min(count, 200), seconds)
    return await run_load(call, workers, count, seconds)


def _summary(latencies: list[float], wall: float, cpu_s: float | None) -> dict[str, float]:
    ordered = sorted(latencies)
    out = {
        "requests": float(len(ordered)),
        "per_s": len(ordered) / wall,
        "p50_ms": percentile(ordered, 50) * 1e3,
        "p99_ms": percentile(ordered, 99) * 1e3,
    }
    if cpu_s is not None:
        out["server_cpu_ms_per_request"] = cpu_s / len(ordered) * 1e3
    return out


async def run(size: str, concurrency: int | None) -> dict[str, Any]:
    from ... import AsyncClient, __version__

    count, seconds, default_workers = SIZES[size]
    workers_high = concurrency or default_workers
    results: dict[str, Any] = {"size": size, "versions": _versions(__version__)}
    with tempfile.TemporaryDirectory(prefix="tidings-bench-gw-") as tmp:
        stack = Stack(Path(tmp))
        try:
            await asyncio.to_thread(stack.start)
            async with AsyncClient(stack.broker) as client:
                for workers in (1, workers_high):
                    n = count if workers > 1 else max(50, count // 5)
                    runs: dict[str, dict[str, float]] = {}
                    lat, wall = await _direct_path(client, workers, n, seconds)
                    runs["direct client.request"] = _summary(lat, wall, None)
                    for label, addr, proc in (
                        ("tidings gateway", stack.gateway_addr, stack.gateway),
                        ("FastAPI + client.request", stack.fastapi_addr, stack.fastapi),
                    ):
                        cpu0 = tree_cpu(proc.pid)
                        lat, wall = await _http_path(addr, workers, n, seconds)
                        runs[label] = _summary(lat, wall, tree_cpu(proc.pid) - cpu0)
                    gw = runs["tidings gateway"]["per_s"]
                    runs["ratios"] = {
                        "gateway_vs_direct": gw / runs["direct client.request"]["per_s"],
                        "gateway_vs_fastapi": gw / runs["FastAPI + client.request"]["per_s"],
                    }
                    results[f"concurrency {workers}"] = runs
        finally:
            stack.stop()
    return results


def _versions(tidings_version: str) -> dict[str, str]:
    from importlib.metadata import version

    out = {"tidings": tidings_version}
    for name in ("starlette", "uvicorn", "fastapi"):
        out[name] = version(name)
    return out


def report(res: dict[str, Any]) -> str:
    lines = [f"## Gateway vs direct request vs FastAPI ({res['size']})"]
    for key, runs in res.items():
        if not key.startswith("concurrency"):
            continue
        lines += ["", f"### {key}", "",
                  "| path | requests/s | p50 ms | p99 ms | server CPU ms/request |",
                  "| --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
        for label, r in runs.items():
            if label == "ratios":
                continue
            cpu = r.get("server_cpu_ms_per_request")
            lines.append(
                f"| {label} | {r['per_s']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                f"{'-' if cpu is None else f'{cpu:.2f}'} |"
            )
        ratios = runs["ratios"]
        lines += ["", f"gateway / direct: {ratios['gateway_vs_direct']:.2f}x requests/s; "
                      f"gateway / FastAPI: {ratios['gateway_vs_fastapi']:.2f}x"]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tidings bench gateway", description=__doc__)
    sizes = p.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="smaller counts (about a minute)")
    sizes.add_argument("--smoke", action="store_true", help="tiny counts (the test suite)")
    p.add_argument("--concurrency", type=int, help="workers of the throughput runs")
    p.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    args = p.parse_args(argv)
    try:
        import fastapi  # noqa: F401
    except ImportError:
        p.error("the FastAPI comparison needs fastapi: pip install fastapi")
    logging.getLogger("tidings").setLevel(logging.ERROR)
    size = "smoke" if args.smoke else "quick" if args.quick else "full"
    t0 = time.monotonic()
    res = asyncio.run(run(size, args.concurrency))
    res["seconds"] = time.monotonic() - t0
    print(json.dumps(res, indent=2) if args.json else report(res))
    return 0
