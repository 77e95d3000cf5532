"""What scraping ``/metrics`` every second costs a busy broker.

``python -m tidings.benchmarking.scrape`` starts a broker process (data on disk, ``--fsync
batch``, HTTP on a free loopback port) with ``--topics`` topics of two groups each, then runs
the same publish/consume workload through ``tidings.connect`` in alternating rounds, with and
without a scraper fetching ``/metrics`` every ``--interval`` seconds, and prints messages per
second for both, their ratio, and how long one scrape takes. Rounds alternate so that drift on
a shared machine hits both sides alike.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

import tidings

from .procs import ServerProcess, free_port, port_open, wait_until

BATCH = 100


async def _workload(url: str, seconds: float) -> int:
    """Publish batches to one topic while a group consumes and acks; messages published and
    consumed (together: what the broker handled)."""
    async with tidings.connect(url) as client:
        sub = await client.subscribe("bench.scrape.0", group="g0", prefetch=500)
        done = asyncio.Event()
        consumed = 0

        async def consume() -> None:
            nonlocal consumed
            async for msg in sub:
                await msg.ack()
                consumed += 1
                if done.is_set():
                    break

        task = asyncio.create_task(consume())
        stop_at = time.monotonic() + seconds
        body = b"x" * 256
        published = 0
        while time.monotonic() < stop_at:
            published += BATCH
            await client.publish_many(
                "bench.scrape.0", [tidings.Outgoing(body) for _ in range(BATCH)]
            )
            await asyncio.sleep(0)
        counted = consumed + published
        done.set()
        task.cancel()
        await sub.close()
        return counted


class Scraper(threading.Thread):
    def __init__(self, base: str, interval: float) -> None:
        super().__init__(daemon=True)
        self.base, self.interval = base, interval
        self.stop = threading.Event()
        self.took: list[float] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=10) as http:
            while not self.stop.is_set():
                began = time.perf_counter()
                r = http.get("/metrics")
                r.raise_for_status()
                self.took.append(time.perf_counter() - began)
                self.stop.wait(self.interval)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tidings.benchmarking.scrape")
    p.add_argument("--seconds", type=float, default=5.0, help="length of one round")
    p.add_argument("--rounds", type=int, default=2, help="rounds with and without scraping")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between scrapes")
    p.add_argument("--topics", type=int, default=20, help="topics (two groups each)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tidings-scrape-") as tmp:
        port, http_port = free_port(), free_port()
        broker = ServerProcess(
            [sys.executable, "-m", "tidings.server", "--port", str(port), "--data",
             str(Path(tmp) / "data"), "--http", f"127.0.0.1:{http_port}"],
            Path(tmp) / "broker.log",
        )  # fmt: skip
        broker.start()
        try:
            wait_until(lambda: port_open(port) and port_open(http_port), 30, "broker start")
            url, base = f"tidings://127.0.0.1:{port}", f"http://127.0.0.1:{http_port}"
            asyncio.run(_setup(url, args.topics))
            plain: list[float] = []
            scraped: list[float] = []
            took: list[float] = []
            for _ in range(args.rounds):
                plain.append(asyncio.run(_workload(url, args.seconds)) / args.seconds)
                scraper = Scraper(base, args.interval)
                scraper.start()
                scraped.append(asyncio.run(_workload(url, args.seconds)) / args.seconds)
                scraper.stop.set()
                scraper.join()
                took += scraper.took
        finally:
            broker.stop()
    a, b = statistics.mean(plain), statistics.mean(scraped)
    print(f"topics: {args.topics} (2 groups each), rounds: {args.rounds} x {args.seconds:g}s")
    print("messages published + consumed per second:")
    print(f"without scraping: {a:,.0f} msg/s  (rounds: {', '.join(f'{x:,.0f}' for x in plain)})")
    print(f"scraping every {args.interval:g}s: {b:,.0f} msg/s  "
          f"(rounds: {', '.join(f'{x:,.0f}' for x in scraped)})")  # fmt: skip
    print(f"ratio: {b / a:.3f}  ({(1 - b / a) * 100:+.1f}% cost)")
    if took:
        print(f"one scrape: median {statistics.median(took) * 1000:.1f} ms, "
              f"max {max(took) * 1000:.1f} ms over {len(took)} scrapes")  # fmt: skip
    return 0


async def _setup(url: str, topics: int) -> None:
    async with tidings.connect(url) as client:
        for i in range(topics):
            await client.create_topic(f"bench.scrape.{i}", partitions=2, exist_ok=True)
            for g in ("g0", "g1"):
                sub = await client.subscribe(f"bench.scrape.{i}", group=g, prefetch=1)
                await sub.close()


if __name__ == "__main__":
    raise SystemExit(main())
