"""A minimal keep-alive HTTP/1.1 load client: one connection per worker, requests written as
bytes, responses read by ``Content-Length``. It measures the server, not an HTTP library."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if length is None:
            raise RuntimeError(f"a response without Content-Length: {lines[0]}")
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass


async def run_load(
    call: Callable[[int], Awaitable[None]], workers: int, count: int, seconds: float
) -> tuple[list[float], float]:
    """``count`` calls by ``workers`` workers (at most ``seconds``); each call's latency and
    the wall time. ``call(worker)`` raises on a bad answer."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    issued = 0

    async def worker(w: int) -> None:
        nonlocal issued
        while issued < count and time.perf_counter() < deadline:
            issued += 1
            t = time.perf_counter()
            await call(w)
            latencies.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    return latencies, time.perf_counter() - t0
