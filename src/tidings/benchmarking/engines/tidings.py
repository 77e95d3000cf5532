"""tidings through ``tidings://``: the built-in broker with ``--fsync batch`` (a publish is
confirmed only after its group commit's fsync) and the native transport.

Single publishes are concurrent one-message ``publish`` calls (each its own frame, pipelined
on one connection); batches are one ``publish`` call of many messages. Consumers use
``next_batch`` with a prefetch window and ack every message (acks are coalesced by the
client into one frame per loop turn).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ... import __version__
from ...model import GroupSpec, Outgoing, TopicSpec
from ...transports.tidings import NativeTransport
from ..procs import ServerProcess, wait_until
from .base import Client, Engine, OnMessage

LISTENING = re.compile(r"listening on (tidings://[0-9A-Za-z.:\[\]-]+)")
PREFETCH = 1000


def _pythonpath() -> str:
    """The broker child imports this same tidings (installed or a source tree)."""
    here = str(Path(__file__).resolve().parents[3])
    return os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)


class TidingsClient(Client):
    def __init__(self, url: str) -> None:
        super().__init__()
        self.transport = NativeTransport(url)

    async def connect(self) -> None:
        await self.transport.connect()

    async def close(self) -> None:
        await self.transport.close()

    async def declare(
        self, topic: str, groups: Sequence[str], partitions: int = 1, ordered: bool = False
    ) -> None:
        await self.transport.create_topic(TopicSpec(name=topic, partitions=partitions))
        for group in groups:  # joining creates the group at 'earliest'; leave at once
            sub = await self.transport.subscribe(self._group(topic, group, ordered), prefetch=1)
            await sub.close()

    @staticmethod
    def _group(topic: str, group: str, ordered: bool) -> GroupSpec:
        if ordered:
            return GroupSpec(topic=topic, name=group, mode="ordered", in_flight_per_partition=256)
        return GroupSpec(topic=topic, name=group)

    async def publish_one(self, topic: str, body: bytes, key: str | None = None) -> None:
        await self.transport.publish(topic, [Outgoing(body, key)])

    async def publish_batch(
        self, topic: str, bodies: Sequence[bytes], keys: Sequence[str] | None = None
    ) -> None:
        if keys is None:
            out = [Outgoing(b) for b in bodies]
        else:
            out = [Outgoing(b, k) for b, k in zip(bodies, keys, strict=True)]
        await self.transport.publish(topic, out)

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
        sub = await self.transport.subscribe(self._group(topic, group, ordered), prefetch=PREFETCH)
        try:
            done = False
            while not done and not stop.is_set():
                batch = await sub.next_batch(PREFETCH, timeout=1.0)
                for message in batch:
                    done = on_message(message.body, message.key) or done
                if batch:
                    await asyncio.gather(*(m.ack() for m in batch))
        finally:
            await sub.close()


class TidingsEngine(Engine):
    name = "tidings"
    server = "tidings"
    is_tidings = True

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

    def client(self) -> Client:
        return TidingsClient(self.url)

    async def wait_recovered(self, topic: str) -> None:
        client = NativeTransport(self.url)
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
