"""tidings through ``tidings://``: the built-in broker with ``--fsync batch`` (a publish is
confirmed only after its group commit's fsync), measured through the public API only:
``tidings.connect(url)`` and the idioms docs/client.md shows.

- ``publish.single``: ``await client.publish(topic, body)``, many such calls in flight at once
  (a producer's tasks; the client coalesces them into one batch per event-loop turn).
- ``publish.async``: ``client.publish_async(topic, body)`` futures, awaited with a window.
- ``publish.batch``: ``await client.publish_many(topic, [Outgoing(body), ...])``.
- ``consume``: the plain loop, ``async for msg in sub: ...; await msg.ack()``.
- ``consume.batch``: ``await sub.next_batch(1000)`` and the batch's acks gathered.

One extra row, ``publish.single.raw``, publishes through the internal ``tidings://`` transport
object (below the client's checks, ids and retries); it is labelled as such in the report.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ... import __version__, connect
from ...model import Outgoing, TopicSpec
from ...transports.tidings import NativeTransport
from ..procs import ServerProcess, wait_until
from .base import Client, Engine, OnMessage, wait_any

LISTENING = re.compile(r"listening on (tidings://[0-9A-Za-z.:\[\]-]+)")
PREFETCH = 1000
#: publish_async futures a producer lets run ahead before it awaits the oldest
ASYNC_WINDOW = 10_000


def _pythonpath() -> str:
    """The broker child imports this same tidings (installed or a source tree)."""
    here = str(Path(__file__).resolve().parents[3])
    return os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)


class TidingsClient(Client):
    """One ``tidings.connect(url)`` client. ``mode`` picks the consume idiom ("" is the plain
    ``async for`` loop, "batch" is ``next_batch`` with gathered acks)."""

    extra_consume_modes: tuple[str, ...] = ("batch",)

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.client = connect(url)
        self.mode = ""

    async def connect(self) -> None:
        await self.client.connect()

    async def close(self) -> None:
        await self.client.close()

    async def declare(
        self, topic: str, groups: Sequence[str], partitions: int = 1, ordered: bool = False
    ) -> None:
        await self.client.create_topic(topic, partitions=partitions)
        for group in groups:  # joining creates the group at 'earliest'; leave at once
            sub = await self._subscribe(topic, group, ordered, prefetch=1)
            await sub.close()

    def _subscribe(
        self, topic: str, group: str, ordered: bool, prefetch: int = PREFETCH
    ) -> asyncio.Future[Any]:
        if ordered:
            return asyncio.ensure_future(
                self.client.subscribe(
                    topic, group, mode="ordered", in_flight_per_partition=256, prefetch=prefetch
                )
            )
        return asyncio.ensure_future(self.client.subscribe(topic, group, prefetch=prefetch))

    async def publish_one(self, topic: str, body: bytes, key: str | None = None) -> None:
        await self.client.publish(topic, body, key=key)

    async def publish_futures(self, topic: str, bodies: Sequence[bytes]) -> None:
        """Every body through ``publish_async``, at most ASYNC_WINDOW answers outstanding."""
        publish_async = self.client.publish_async
        window: collections.deque[asyncio.Future[Any]] = collections.deque()
        for b in bodies:
            window.append(publish_async(topic, b))
            if len(window) >= ASYNC_WINDOW:
                await window.popleft()
        await asyncio.gather(*window)

    async def publish_batch(
        self, topic: str, bodies: Sequence[bytes], keys: Sequence[str] | None = None
    ) -> None:
        if keys is None:
            out = [Outgoing(b) for b in bodies]
        else:
            out = [Outgoing(b, k) for b, k in zip(bodies, keys, strict=True)]
        await self.client.publish_many(topic, out)

    def raw(self) -> Client:
        """The extra row's client: the internal transport object, not the public API."""
        return TransportClient(self.url)

    async def consume(
        self,
        topic: str,
        group: str,
        on_message: OnMessage,
        stop: asyncio.Event,
        *,
        member: int = 0,
        members: int = 1,
        ordered: bool = False,
        partitions: int = 1,
    ) -> None:
        sub = await self._subscribe(topic, group, ordered)
        try:
            if self.mode == "batch":
                await _batch_loop(sub, on_message, stop)
                return
            finished = asyncio.Event()

            async def plain_loop() -> None:
                async for msg in sub:
                    done = on_message(msg.body, msg.key)
                    await msg.ack()
                    if done:
                        finished.set()
                        return

            loop = asyncio.ensure_future(plain_loop())
            try:
                await wait_any(finished, stop, _ended(loop))
            finally:
                loop.cancel()
                await asyncio.gather(loop, return_exceptions=True)
            if loop.done() and not loop.cancelled() and (exc := loop.exception()) is not None:
                raise exc
        finally:
            await sub.close()


def _ended(task: asyncio.Future[Any]) -> asyncio.Event:
    event = asyncio.Event()
    task.add_done_callback(lambda _: event.set())
    return event


async def _batch_loop(sub: Any, on_message: OnMessage, stop: asyncio.Event) -> None:
    done = False
    while not done and not stop.is_set():
        batch = await sub.next_batch(PREFETCH, timeout=1.0)
        for message in batch:
            done = on_message(message.body, message.key) or done
        if batch:
            await asyncio.gather(*(m.ack() for m in batch))


class TransportClient(TidingsClient):
    """The raw ``tidings://`` transport object (internal): publishes without the client's
    checks, Snowflake ids, coalescing or retry wrapper. Only the publish row uses it."""

    extra_consume_modes = ()

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.transport = NativeTransport(url)

    async def connect(self) -> None:
        await self.transport.connect()

    async def close(self) -> None:
        await self.transport.close()

    async def declare(
        self, topic: str, groups: Sequence[str], partitions: int = 1, ordered: bool = False
    ) -> None:
        await self.transport.create_topic(TopicSpec(name=topic, partitions=partitions))

    async def publish_one(self, topic: str, body: bytes, key: str | None = None) -> None:
        await self.transport.publish(topic, [Outgoing(body, key)])


class TidingsEngine(Engine):
    name = "tidings"
    server = "tidings"
    is_tidings = True

    #: extra broker options (the traced variant adds ``--trace``)
    options: tuple[str, ...] = ()

    def __init__(self, workdir: Path, fsync: str = "batch") -> None:
        super().__init__(workdir)
        self.fsync = fsync
        self.port = 0
        self.url = ""
        self.proc: ServerProcess | None = None

    @classmethod
    def available(cls) -> str | None:
        return None

    def version(self) -> str:
        return f"tidings {__version__} (python {sys.version.split()[0]})"

    def start(self) -> None:
        data = self.workdir / "data"
        argv = [sys.executable, "-m", "tidings.server", "--host", "127.0.0.1"]
        argv += ["--port", str(self.port), "--data", str(data), "--fsync", self.fsync]
        argv += ["--http", "off"]  # its fixed default port may be taken; probes are not measured
        argv += self.options
        log = self.workdir / "server.log"
        offset = log.stat().st_size if log.exists() else 0  # earlier runs' lines stay above
        env = {"PYTHONUNBUFFERED": "1", "PYTHONPATH": _pythonpath()}
        proc = self.proc = ServerProcess(argv, log, env=env).start()

        def listening() -> bool:
            proc.check_alive("the tidings broker")
            with open(log, errors="replace") as f:
                f.seek(offset)
                found = LISTENING.search(f.read())
            if found:
                self.url = found.group(1)
            return bool(found)

        wait_until(listening, 120, "the tidings broker listening")
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def rss_bytes(self) -> int:
        return self.proc.rss_bytes() if self.proc else 0

    def cpu_seconds(self) -> float | None:
        return self.proc.cpu_seconds() if self.proc else None

    def client(self) -> Client:
        return TidingsClient(self.url)

    async def wait_recovered(self, topic: str) -> None:
        client = connect(self.url)
        await client.connect()
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    await client.topic_info(topic)
                    return
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.02)
        finally:
            await client.close()


class TracedTidingsEngine(TidingsEngine):
    """The same broker with message tracing on every topic (``--trace '>'``, the default ring
    of 100,000 events, every message sampled): run beside ``tidings`` to see what tracing
    costs (``--engines tidings,tidings-traced``)."""

    name = "tidings-traced"
    options = ("--trace", ">")
