"""Redis Streams: ``redis-server`` with AOF ``appendfsync everysec`` and redis-py (asyncio).

Single publishes are independent ``XADD`` commands from concurrent tasks over a pool of 64
connections; batches are one non-transactional pipeline of ``XADD`` commands (one round trip),
as the Redis docs recommend. A reply means the entry is in memory and in the AOF buffer, fsynced
within a second: Redis never confirms durability, so its figures are an upper bound. Consumers
use ``XREADGROUP COUNT 500 BLOCK`` and one ``XACK`` with all ids of a batch.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..procs import ServerProcess, free_port, wait_until
from .base import Client, Engine, OnMessage, partition_of

COUNT = 500
POOL = 64


def _stream(topic: str, key: str | None, partitions: int) -> str:
    if partitions == 1:
        return topic
    return f"{topic}.p{0 if key is None else partition_of(key, partitions)}"


class RedisClient(Client):
    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port

    async def connect(self) -> None:
        import redis.asyncio as redis

        pool = redis.BlockingConnectionPool(
            host="127.0.0.1", port=self.port, max_connections=POOL, timeout=60
        )
        self.r = redis.Redis(connection_pool=pool)
        await self.r.ping()

    async def close(self) -> None:
        await self.r.aclose()

    async def declare(
        self, topic: str, groups: Sequence[str], partitions: int = 1, ordered: bool = False
    ) -> None:
        from redis.exceptions import ResponseError

        self.partitions[topic] = partitions
        for p in range(partitions):
            for group in groups:
                try:
                    stream = topic if partitions == 1 else f"{topic}.p{p}"
                    await self.r.xgroup_create(stream, group, id="0", mkstream=True)
                except ResponseError as exc:
                    if "BUSYGROUP" not in str(exc):
                        raise

    async def publish_one(self, topic: str, body: bytes, key: str | None = None) -> None:
        n = self.partitions.get(topic, 1)
        fields: dict[Any, Any] = {"b": body} if key is None else {"b": body, "k": key}
        await self.r.xadd(_stream(topic, key, n), fields)

    async def publish_batch(
        self, topic: str, bodies: Sequence[bytes], keys: Sequence[str] | None = None
    ) -> None:
        n = self.partitions.get(topic, 1)
        pipe = self.r.pipeline(transaction=False)
        if keys is None:
            for body in bodies:
                pipe.xadd(_stream(topic, None, n), {"b": body})
        else:
            for body, key in zip(bodies, keys, strict=True):
                pipe.xadd(_stream(topic, key, n), {"b": body, "k": key})
        await pipe.execute()

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
        streams: dict[Any, Any]  # redis-py types these invariantly: any str key fits
        if partitions == 1:
            streams = {topic: ">"}
        else:
            streams = {f"{topic}.p{p}": ">" for p in range(member, partitions, members)}
        me = f"c{id(self)}-{member}"
        done = False
        while not done and not stop.is_set():
            reply: Any = await self.r.xreadgroup(group, me, streams, count=COUNT, block=1000)
            for stream, entries in reply or ():
                ids = []
                for entry_id, fields in entries:
                    key = fields.get(b"k")
                    done = on_message(fields[b"b"], key.decode() if key else None) or done
                    ids.append(entry_id)
                if ids:
                    await self.r.xack(stream, group, *ids)


class RedisEngine(Engine):
    name = "redis"
    server = "redis"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.port = free_port()
        self.proc: ServerProcess | None = None

    @classmethod
    def available(cls) -> str | None:
        if shutil.which("redis-server") is None:
            return "redis-server is not installed (scripts/bench-setup.sh installs it)"
        try:
            import redis  # noqa: F401
        except ImportError:
            return "redis (redis-py) is not installed (pip install redis)"
        return None

    def version(self) -> str:
        import redis

        out = subprocess.run(["redis-server", "--version"], capture_output=True).stdout.decode()
        return f"{out.split(' sha=')[0].strip()}; redis-py {redis.__version__}"

    def start(self) -> None:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port)]
        argv += ["--dir", str(data), "--appendonly", "yes", "--appendfsync", "everysec"]
        argv += ["--save", "", "--daemonize", "no", "--protected-mode", "no"]
        proc = self.proc = ServerProcess(argv, self.workdir / "server.log").start()

        def ready() -> bool:
            proc.check_alive("redis-server")
            out = subprocess.run(
                ["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), "PING"],
                capture_output=True,
            )
            return out.stdout.strip() == b"PONG"

        wait_until(ready, 120, "redis-server answering PING")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def rss_bytes(self) -> int:
        return self.proc.rss_bytes() if self.proc else 0

    def client(self) -> Client:
        return RedisClient(self.port)

    async def wait_recovered(self, topic: str) -> None:
        client = RedisClient(self.port)
        await client.connect()
        try:
            deadline = time.monotonic() + 120
            while not await client.r.exists(topic, f"{topic}.p0"):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"redis did not reload stream {topic}")
                await asyncio.sleep(0.02)
        finally:
            await client.close()
