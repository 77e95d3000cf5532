"""A TCP proxy that imitates a bad network between clients and the broker.

- ``latency``: seconds added to every chunk, each way;
- ``partition(seconds)``: existing connections go silent both ways (half-open: nobody gets
  a FIN or RST) and new ones are refused, until the partition heals;
- ``blackhole(conn)``: one connection goes silent both ways for good (a dead client host);
- ``cut()``: every connection is reset at once.
"""

from __future__ import annotations

import asyncio
import contextlib


class Link:
    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream = upstream
        self.silent = False


class NetemProxy:
    def __init__(self, target_url: str) -> None:
        host, port = target_url.removeprefix("tidings://").rsplit(":", 1)
        self.target = (host, int(port))
        self.latency = 0.0
        self.partitioned = False
        self.links: list[Link] = []
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"tidings://127.0.0.1:{port}"

    async def _handle(self, reader, writer) -> None:
        if self.partitioned:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        link = Link(writer, up_writer)
        self.links.append(link)
        for task in (
            asyncio.create_task(self._pipe(link, reader, up_writer)),
            asyncio.create_task(self._pipe(link, up_reader, writer)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, link: Link, reader, writer) -> None:
        try:
            while data := await reader.read(1 << 16):
                if self.latency:
                    await asyncio.sleep(self.latency)
                if link.silent or self.partitioned:
                    continue  # dropped on the floor; the other side never learns
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if not link.silent:
                writer.close()

    def blackhole(self, link: Link) -> None:
        link.silent = True

    async def partition(self, seconds: float) -> None:
        """Silence every connection and refuse new ones for ``seconds``; the old connections
        stay silent afterwards (as after a real partition, their peers must notice)."""
        self.partitioned = True
        for link in self.links:
            link.silent = True
        await asyncio.sleep(seconds)
        self.partitioned = False

    def cut(self) -> None:
        for link in self.links:
            for w in (link.client, link.upstream):
                with contextlib.suppress(Exception):
                    w.transport.abort()
        self.links.clear()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
