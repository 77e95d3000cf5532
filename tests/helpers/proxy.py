"""A TCP proxy between a client and the broker that tests can break on purpose."""

from __future__ import annotations

import asyncio
import contextlib


class FaultyProxy:
    """Forwards 127.0.0.1:<port> to the broker. ``hold_replies`` swallows the broker's bytes
    (requests arrive, answers never come back); ``cut()`` drops every connection."""

    def __init__(self, target_url: str) -> None:
        host, port = target_url.removeprefix("tidings://").rsplit(":", 1)
        self.target = (host, int(port))
        self.hold_replies = False
        self.client_bytes = 0
        self._server: asyncio.AbstractServer | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"tidings://127.0.0.1:{port}"

    async def _handle(self, reader, writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers += [writer, up_writer]
        for task in (
            asyncio.create_task(self._pipe(reader, up_writer, upstream=True)),
            asyncio.create_task(self._pipe(up_reader, writer, upstream=False)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, reader, writer, *, upstream: bool) -> None:
        try:
            while data := await reader.read(1 << 16):
                if upstream:
                    self.client_bytes += len(data)
                elif self.hold_replies:
                    continue
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def cut(self) -> None:
        for writer in self._writers:
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
