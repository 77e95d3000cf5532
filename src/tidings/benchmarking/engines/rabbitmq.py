"""RabbitMQ: ``rabbitmq-server`` (its own epmd on a free port), aio-pika, classic or quorum
queues.

Each group is a durable queue bound to the topic's durable direct exchange (all groups bound
with the same routing key get every message; a partitioned topic has one queue per group and
partition). Messages are persistent; the publishing channel has publisher confirms, and a
publish returns when the broker confirms it (after fsync for persistent messages). Single
publishes keep a window of confirms in flight from concurrent tasks; a batch is a window of
publishes awaited together (RabbitMQ has no batch publish). Consumers use ``basic.qos``
prefetch 1000 and acknowledge with ``multiple=True`` every 100 messages, as the RabbitMQ docs
recommend.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aio_pika.abc import AbstractExchange, AbstractIncomingMessage

from ..procs import ServerProcess, free_port, wait_until
from .base import Client, Engine, OnMessage, partition_of, wait_any

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
PREFETCH = 1000
ACK_EVERY = 100


class RabbitClient(Client):
    def __init__(self, port: int, queue_type: str) -> None:
        super().__init__()
        self.url = f"amqp://guest:guest@127.0.0.1:{port}/"
        self.queue_type = queue_type
        self.exchanges: dict[str, AbstractExchange] = {}

    async def connect(self) -> None:
        import aio_pika

        self.conn = await aio_pika.connect(self.url)
        self.channel = await self.conn.channel(publisher_confirms=True)

    async def close(self) -> None:
        await self.conn.close()

    async def declare(
        self, topic: str, groups: Sequence[str], partitions: int = 1, ordered: bool = False
    ) -> None:
        import aio_pika

        self.partitions[topic] = partitions
        exchange = await self.channel.declare_exchange(
            topic, aio_pika.ExchangeType.DIRECT, durable=True
        )
        args: dict[str, Any] = {"x-queue-type": self.queue_type}
        for group in groups:
            for p in range(partitions):
                queue = await self.channel.declare_queue(
                    _queue(topic, group, p, partitions), durable=True, arguments=args
                )
                await queue.bind(exchange, routing_key=f"p{p}")

    async def _exchange(self, topic: str) -> AbstractExchange:
        exchange = self.exchanges.get(topic)
        if exchange is None:
            exchange = self.exchanges[topic] = await self.channel.get_exchange(topic)
        return exchange

    async def publish_one(self, topic: str, body: bytes, key: str | None = None) -> None:
        import aio_pika

        exchange = await self._exchange(topic)
        n = self.partitions.get(topic, 1)
        route = f"p{0 if key is None or n == 1 else partition_of(key, n)}"
        message = aio_pika.Message(
            body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, headers={"k": key or ""}
        )
        await exchange.publish(message, routing_key=route)

    async def publish_batch(
        self, topic: str, bodies: Sequence[bytes], keys: Sequence[str] | None = None
    ) -> None:
        each: Sequence[str | None] = keys if keys is not None else [None] * len(bodies)
        await asyncio.gather(
            *(self.publish_one(topic, b, k) for b, k in zip(bodies, each, strict=True))
        )

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
        channel = await self.conn.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        finished = asyncio.Event()
        state: dict[str, Any] = {"unacked": 0, "last": None}

        async def handle(message: AbstractIncomingMessage) -> None:
            if finished.is_set():
                return  # prefetched beyond the end: returned to the queue when we leave
            k = (message.headers or {}).get("k")  # publish_one sets a str
            key = k if isinstance(k, str) and k else None
            done = on_message(message.body, key)
            state["unacked"] += 1
            state["last"] = message
            if done or state["unacked"] >= ACK_EVERY:
                state["unacked"] = 0
                await message.ack(multiple=True)
            if done:
                finished.set()

        tags = []
        queues = []
        for p in range(member, partitions, members):
            queue = await channel.get_queue(_queue(topic, group, p, partitions))
            queues.append(queue)
            tags.append(await queue.consume(handle))
        await wait_any(finished, stop)
        finished.set()
        for queue, tag in zip(queues, tags, strict=True):
            await queue.cancel(tag)
        await channel.close()


def _queue(topic: str, group: str, partition: int, partitions: int) -> str:
    return f"{topic}.{group}" if partitions == 1 else f"{topic}.{group}.p{partition}"


class RabbitEngine(Engine):
    name = "rabbitmq"
    server = "rabbitmq"
    queue_type = "classic"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.epmd: ServerProcess | None = None
        self.proc: ServerProcess | None = None

    @classmethod
    def available(cls) -> str | None:
        if not Path(SERVER).exists() or shutil.which("epmd") is None:
            return "rabbitmq-server is not installed (scripts/bench-setup.sh installs it)"
        try:
            import aio_pika  # noqa: F401
        except ImportError:
            return "aio-pika is not installed (pip install aio-pika)"
        return None

    def version(self) -> str:
        import aio_pika

        def deb(package: str) -> str:
            argv = ["dpkg-query", "-W", "-f", "${Version}", package]
            return subprocess.run(argv, capture_output=True).stdout.decode() or "?"

        return (
            f"RabbitMQ {deb('rabbitmq-server')} ({self.queue_type} queues), Erlang "
            f"{deb('erlang-base')}; aio-pika {aio_pika.__version__}"
        )

    def _env(self) -> dict[str, str]:
        w = self.workdir
        return {
            "HOME": str(w),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_NODENAME": f"bench{self.port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(w / "mnesia"),
            "RABBITMQ_LOG_BASE": str(w / "log"),
            "RABBITMQ_CONFIG_FILE": str(w / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(w / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(w / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(w / "rabbitmq-env.conf"),
        }

    def start(self) -> None:
        w = self.workdir
        w.mkdir(parents=True, exist_ok=True)
        (w / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\ndisk_free_limit.absolute = 100MB\n"
        )
        (w / "enabled_plugins").write_text("[].\n")
        if self.epmd is None:
            argv = ["epmd", "-port", str(self.epmd_port), "-address", "127.0.0.1"]
            self.epmd = ServerProcess(argv, w / "epmd.log").start()
        proc = self.proc = ServerProcess([SERVER], w / "server.log", env=self._env()).start()

        def ready() -> bool:
            proc.check_alive("rabbitmq-server")
            return _amqp_ready(self.port)

        wait_until(ready, 120, "rabbitmq-server accepting AMQP", step=0.1)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(60)
            self.proc = None

    def shutdown(self) -> None:
        self.stop()
        if self.epmd is not None:
            self.epmd.stop()
            self.epmd = None

    def rss_bytes(self) -> int:
        return self.proc.rss_bytes() if self.proc else 0

    def client(self) -> Client:
        return RabbitClient(self.port, self.queue_type)


class RabbitQuorumEngine(RabbitEngine):
    name = "rabbitmq-quorum"
    queue_type = "quorum"


def _amqp_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(b"AMQP\x00\x00\x09\x01")
            s.settimeout(2.0)
            return s.recv(7)[:1] == b"\x01"  # a method frame: connection.start
    except OSError:
        return False


class TidingsAmqpEngine(RabbitQuorumEngine):
    """tidings through ``amqp://`` on the same RabbitMQ (quorum queues, publisher confirms),
    measured through ``tidings.connect(url)`` as the ``tidings`` engine is: its ratios to
    ``rabbitmq-quorum`` (raw aio-pika doing the same work) are the cost of the tidings layer.
    The transport reads topic settings and stats through the management plugin, which this
    server therefore runs."""

    name = "tidings-amqp"
    is_tidings = True

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.management_port = free_port()

    def version(self) -> str:
        from ... import __version__

        return f"tidings {__version__} on amqp://, " + super().version()

    def start(self) -> None:
        w = self.workdir
        w.mkdir(parents=True, exist_ok=True)
        super().start()
        port = self.management_port

        def management() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                    return True
            except OSError:
                return False

        wait_until(management, 120, "the RabbitMQ management API", step=0.2)

    def _env(self) -> dict[str, str]:
        env = super()._env()
        w = self.workdir
        # written before the server starts (RabbitEngine.start writes only the listener)
        (w / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\ndisk_free_limit.absolute = 100MB\n"
            f"management.tcp.port = {self.management_port}\nmanagement.tcp.ip = 127.0.0.1\n"
        )
        (w / "enabled_plugins").write_text("[rabbitmq_management].\n")
        return env

    def client(self) -> Client:
        url = (
            f"amqp://guest:guest@127.0.0.1:{self.port}/"
            f"?management=http://127.0.0.1:{self.management_port}"
        )
        return _amqp_client(url)


def _amqp_client(url: str) -> Client:
    """``tidings.connect(amqp://...)``; its extra raw row publishes through the transport."""
    from ...transports.amqp import AmqpTransport
    from .tidings import TidingsClient, TransportClient

    class AmqpTransportClient(TransportClient):
        def __init__(self, url: str) -> None:
            TidingsClient.__init__(self, url)
            self.transport = AmqpTransport(url)  # type: ignore[assignment]  # the amqp:// one

    class AmqpClient(TidingsClient):
        def raw(self) -> Client:
            return AmqpTransportClient(self.url)

    return AmqpClient(url)
