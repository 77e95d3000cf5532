"""``tidings bench resilience``: what the resilience pipeline costs and what it buys.

1. **Overhead** per call of a bare ``await fn()``, an empty pipeline and a full one (attempt
   and total timeout, retry with budget, breaker, bulkhead, rate limiter; and with hedging),
   next to one request/reply round trip on memory:// and on a tidings:// broker process.
2. **Retry amplification and goodput** (attempts per logical request, share of requests that
   succeed) against a 50 %-failing and a dead callee: naive retries vs a retry budget vs budget
   + breaker. Run in virtual time (the fake timer), so the counts are exact and the run quick.
3. **Isolation**: p50/p99 of calls to a healthy callee over memory:// while another callee
   hangs, from a caller with a fixed pool of workers, without and with a bulkhead on the hung
   callee.

Options: ``--quick`` (smaller counts), ``--smoke`` (tiny counts, for the test suite),
``--no-broker`` (skip the tidings:// round trip), ``--json``. The log of the strategies (one
line per rejection) is silenced while it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ..errors import TransportUnavailable
from ..resilience import (
    Backoff,
    Bulkhead,
    CircuitBreaker,
    Counters,
    FakeTimer,
    Hedge,
    Pipeline,
    RateLimiter,
    Retry,
    RetryBudget,
)


async def _per_call(fn: Callable[[], Awaitable[Any]], n: int) -> float:
    """Microseconds per call, best of 3 rounds of ``n``."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            await fn()
        best = min(best, (time.perf_counter() - t0) / n * 1e6)
    return best


def _full(hedge: bool) -> Pipeline:
    return Pipeline(
        "full",
        timeout=5.0,
        total_timeout=10.0,
        retry=Retry(),
        breaker=CircuitBreaker(),
        bulkhead=Bulkhead(max_concurrent=100),
        rate_limit=RateLimiter(rate=1e9),
        hedge=Hedge(delay=5.0) if hedge else None,
    )


async def _round_trip_us(url: str, n: int) -> float:
    from .. import Service

    topic = f"bench.rr.{secrets.token_hex(3)}"
    svc = Service("bench-responder", url=url, default_middleware=False)

    @svc.reply(topic, concurrency=1)
    async def echo(body: dict[str, Any]) -> dict[str, Any]:
        return body

    async with svc.running():
        await svc.request(topic, {}, timeout=30)
        t0 = time.perf_counter()
        for _ in range(n):
            await svc.request(topic, {}, timeout=30)
        return (time.perf_counter() - t0) / n * 1e6


def _broker_url(workdir: Path) -> tuple[Any, str]:
    from .procs import ServerProcess, free_port, wait_until

    port = free_port()
    argv = [sys.executable, "-m", "tidings.server", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--data", str(workdir / "data")]
    proc = ServerProcess(argv, workdir / "server.log").start()
    wait_until(lambda: proc.port_ready("the broker", port), 30, "broker start")
    return proc, f"tidings://127.0.0.1:{port}"


async def overhead(n: int, broker: bool) -> dict[str, float]:
    async def bare() -> int:
        return 1

    empty, full, hedged = Pipeline("empty"), _full(False), _full(True)
    out = {
        "bare_us": await _per_call(bare, n),
        "empty_us": await _per_call(lambda: empty.run(bare), n),
        "full_us": await _per_call(lambda: full.run(bare, callee="c"), n),
        "full_hedged_us": await _per_call(lambda: hedged.run(bare, callee="c"), n // 4),
    }
    out["rr_memory_us"] = await _round_trip_us(f"memory://bench-{secrets.token_hex(3)}", n // 20)
    if broker:
        with tempfile.TemporaryDirectory(prefix="tidings-bench-res-") as tmp:
            proc, url = _broker_url(Path(tmp))
            try:
                out["rr_tidings_us"] = await _round_trip_us(url, n // 20)
            finally:
                proc.stop()
    return out


async def _storm(
    policy: Pipeline, timer: FakeTimer, fail: float, seconds: int, rate: int
) -> dict[str, float]:
    """``rate`` requests per virtual second for ``seconds``; each attempt takes 10 ms and
    fails with probability ``fail``."""
    rng = random.Random(42)
    stats = {"requests": 0, "attempts": 0, "ok": 0}

    async def callee() -> None:
        stats["attempts"] += 1
        await timer.sleep(0.01)
        if rng.random() < fail:
            raise TransportUnavailable("the callee failed")

    async def one() -> None:
        stats["requests"] += 1
        try:
            await policy.run(callee, callee="callee")
            stats["ok"] += 1
        except Exception:
            pass

    tasks: list[asyncio.Task[None]] = []
    for _ in range(seconds * 10):
        tasks += [asyncio.create_task(one()) for _ in range(rate // 10)]
        await timer.run_for(0.1)
    await timer.run_for(60)
    await asyncio.gather(*tasks)
    return {
        "amplification": stats["attempts"] / stats["requests"],
        "goodput": stats["ok"] / stats["requests"],
    }


async def amplification(seconds: int) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for label, fail in (("50% failing", 0.5), ("dead", 1.0)):
        for variant in ("naive", "budget", "budget+breaker"):
            timer = FakeTimer()
            backoff = Backoff(initial=0.05, max_delay=1.0, jitter="full")
            retry = Retry(
                max_attempts=5,
                backoff=backoff,
                budget=None if variant == "naive" else RetryBudget(0.2, 10, 10),
            )
            breaker = (
                CircuitBreaker(failure_rate=0.9, minimum_calls=20, window=50, open_for=5.0)
                if variant == "budget+breaker"
                else None
            )
            policy = Pipeline(
                variant, retry=retry, breaker=breaker, timer=timer, observer=Counters()
            )
            results[f"{label} / {variant}"] = await _storm(policy, timer, fail, seconds, 100)
    return results


async def _isolation_run(bulkhead: Bulkhead | None, seconds: float) -> list[float]:
    from .. import Service

    url = f"memory://bench-iso-{secrets.token_hex(3)}"
    svc = Service("bench-callees", url=url, default_middleware=False, grace_period=0.1)

    @svc.reply("healthy", concurrency=64)
    async def healthy(body: dict[str, Any]) -> dict[str, Any]:
        return body

    @svc.reply("hung", concurrency=64)
    async def hung(body: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(5)
        return body

    policy = Pipeline("iso", bulkhead=bulkhead)
    latencies: list[float] = []
    jobs: asyncio.Queue[tuple[str, float]] = asyncio.Queue()

    async def worker() -> None:
        while True:
            topic, queued = await jobs.get()
            try:
                await svc.request(topic, {}, timeout=1.0, policy=policy)
            except Exception:
                pass  # the hung callee's timeouts and rejections are expected
            if topic == "healthy":
                latencies.append(time.perf_counter() - queued)
            jobs.task_done()

    async with svc.running():
        workers = [asyncio.create_task(worker()) for _ in range(16)]
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            for topic in ("healthy", "hung"):
                jobs.put_nowait((topic, time.perf_counter()))
            await asyncio.sleep(0.01)  # about 100 jobs/s of each kind
        await jobs.join()
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    return sorted(latencies)


async def isolation(seconds: float) -> dict[str, dict[str, float]]:
    """A caller with 16 workers takes jobs (half to a healthy callee, half to one that hangs
    longer than the 1 s request timeout); the healthy jobs' latency is measured from enqueue."""
    results: dict[str, dict[str, float]] = {}
    for variant, bulkhead in (
        ("no bulkhead", None),
        ("bulkhead(4) per callee", Bulkhead(max_concurrent=4, per_callee=True)),
    ):
        latencies = await _isolation_run(bulkhead, seconds)
        results[variant] = {
            "healthy_p50_ms": statistics.median(latencies) * 1e3,
            "healthy_p99_ms": latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1e3,
            "healthy_calls": float(len(latencies)),
        }
    return results


def report(res: dict[str, Any]) -> str:
    o = res["overhead"]
    lines = ["## Resilience pipeline", "", "| per call | µs | over bare |", "| --- | ---: | ---: |"]
    for key, label in (
        ("bare_us", "bare `await fn()`"),
        ("empty_us", "empty pipeline"),
        ("full_us", "full pipeline (no hedge)"),
        ("full_hedged_us", "full pipeline + hedge"),
    ):
        lines.append(f"| {label} | {o[key]:.2f} | {o[key] - o['bare_us']:+.2f} |")
    for key, label in (("rr_memory_us", "memory://"), ("rr_tidings_us", "tidings://")):
        if key in o:
            share = (o["full_us"] - o["bare_us"]) / o[key] * 100
            lines.append(
                f"| request/reply round trip, {label} | {o[key]:.0f} | full pipeline = "
                f"{share:.1f} % of it |"
            )
    lines += ["", "| callee / policy | attempts per request | goodput |", "| --- | ---: | ---: |"]
    for key, r in res["amplification"].items():
        lines.append(f"| {key} | {r['amplification']:.2f} | {r['goodput'] * 100:.1f} % |")
    lines += ["", "| healthy callee while another hangs | p50 ms | p99 ms | calls |"]
    lines += ["| --- | ---: | ---: | ---: |"]
    for key, r in res["isolation"].items():
        lines.append(
            f"| {key} | {r['healthy_p50_ms']:.1f} | {r['healthy_p99_ms']:.1f} | "
            f"{r['healthy_calls']:.0f} |"
        )
    return "\n".join(lines)


SIZES = {  # calls per overhead round, virtual seconds of storm, seconds of isolation
    "smoke": (400, 3, 0.3),
    "quick": (5_000, 10, 2.0),
    "full": (50_000, 30, 6.0),
}


async def run(size: str, broker: bool) -> dict[str, Any]:
    calls, storm, iso = SIZES[size]
    return {
        "overhead": await overhead(calls, broker),
        "amplification": await amplification(storm),
        "isolation": await isolation(iso),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tidings bench resilience", description=__doc__.split("\n")[0])
    sizes = p.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="smaller counts (under a minute)")
    sizes.add_argument("--smoke", action="store_true", help="tiny counts (the test suite)")
    p.add_argument("--no-broker", action="store_true", help="skip the tidings:// round trip")
    p.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    args = p.parse_args(argv)
    logging.getLogger("tidings").setLevel(logging.ERROR)
    size = "smoke" if args.smoke else "quick" if args.quick else "full"
    res = asyncio.run(run(size, not args.no_broker))
    print(json.dumps(res, indent=2) if args.json else report(res))
    return 0
