"""NATS JetStream: ``nats-server -js`` with file storage, nats-py.

Publishing uses JetStream's async publish (``publish_async``: one shared reply inbox, up to
4,000 un-acked publishes in flight, each future resolved by the server's PubAck, which JetStream
sends once the message is stored; JetStream fsyncs its file store every 2 minutes by default,
``sync_interval``). Consumers are durable pull consumers with explicit ack, fetching in
batches (``fetch(batch=500)``) and acking every message, as the NATS docs recommend.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import urllib.request
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from ..procs import ServerProcess, free_port, wait_until
from .base import Client, Engine, OnMessage, partition_of

FETCH = 500


def _binary() -> str | None:
    found = shutil.which("nats-server")
    return found or next((p for p in ("/usr/sbin/nats-server",) if os.path.exists(p)), None)


def _subject(topic: str, key: str | None, partitions: int) -> str:
    if partitions == 1 or key is None:
        return f"{topic}.p0" if partitions > 1 else topic
    return f"{topic}.p{partition_of(key, partitions)}"


class NatsClient(Client):
    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    async def connect(self) -> None:
        import nats

        self.nc = await nats.connect(self.url, max_reconnect_attempts=2)
        self.js = self.nc.jetstream(publish_async_max_pending=4000)

    async def close(self) -> None:
        await self.nc.drain()

    async def declare(
        self, topic: str, groups: Sequence[str], partitions: int = 1, ordered: bool = False
    ) -> None:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType

        self.partitions[topic] = partitions
        subjects = [topic] if partitions == 1 else [f"{topic}.*"]
        await self.js.add_stream(name=topic, subjects=subjects, storage=StorageType.FILE)
        for group in groups:
            for p in range(partitions):
                config = ConsumerConfig(
                    durable_name=group if partitions == 1 else f"{group}-p{p}",
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                    max_ack_pending=20_000,
                    filter_subject=None if partitions == 1 else f"{topic}.p{p}",
                )
                await self.js.add_consumer(topic, config)

    async def publish_one(self, topic: str, body: bytes, key: str | None = None) -> None:
        subject = _subject(topic, key, self.partitions.get(topic, 1))
        await (await self.js.publish_async(subject, body))

    async def publish_batch(
        self, topic: str, bodies: Sequence[bytes], keys: Sequence[str] | None = None
    ) -> None:
        n = self.partitions.get(topic, 1)
        if keys is None:
            futures = [await self.js.publish_async(_subject(topic, None, n), b) for b in bodies]
        else:
            futures = [
                await self.js.publish_async(_subject(topic, k, n), b)
                for b, k in zip(bodies, keys, strict=True)
            ]
        await asyncio.gather(*futures)

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
        if partitions == 1:
            subs = [await self.js.pull_subscribe(topic, durable=group, stream=topic)]
        else:
            subs = [
                await self.js.pull_subscribe(f"{topic}.p{p}", durable=f"{group}-p{p}", stream=topic)
                for p in range(member, partitions, members)
            ]
        done = False
        while not done and not stop.is_set():
            for sub in subs:
                try:
                    msgs = await sub.fetch(FETCH, timeout=0.2 if len(subs) > 1 else 1.0)
                except TimeoutError:
                    continue
                for msg in msgs:
                    done = on_message(msg.data, None) or done
                    await msg.ack()
                if done:
                    break
        for sub in subs:
            await sub.unsubscribe()


class NatsEngine(Engine):
    name = "nats"
    server = "nats"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.port = free_port()
        self.monitor = free_port()
        self.proc: ServerProcess | None = None

    @classmethod
    def available(cls) -> str | None:
        if _binary() is None:
            return "nats-server is not installed (scripts/bench-setup.sh installs it)"
        try:
            import nats  # noqa: F401
        except ImportError:
            return "nats-py is not installed (pip install nats-py)"
        return None

    def version(self) -> str:
        out = subprocess.run([_binary() or "nats-server", "--version"], capture_output=True)
        return f"{out.stdout.decode().strip()}; nats-py {metadata.version('nats-py')}"

    def start(self) -> None:
        argv = [_binary() or "nats-server", "-js", "-sd", str(self.workdir / "store")]
        argv += ["-a", "127.0.0.1", "-p", str(self.port), "-m", str(self.monitor)]
        proc = self.proc = ServerProcess(argv, self.workdir / "server.log").start()

        def healthy() -> bool:
            proc.check_alive("nats-server")
            try:
                url = f"http://127.0.0.1:{self.monitor}/healthz?js-enabled-only=true"
                with urllib.request.urlopen(url, timeout=1.0) as resp:
                    ok: bool = json.loads(resp.read() or b"{}").get("status") == "ok"
                    return ok
            except (OSError, ValueError):
                return False

        wait_until(healthy, 60, "nats-server healthy")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def rss_bytes(self) -> int:
        return self.proc.rss_bytes() if self.proc else 0

    def client(self) -> Client:
        return NatsClient(f"nats://127.0.0.1:{self.port}")
