"""What every engine adapter offers the workloads: a server to start/stop and a client.

An :class:`Engine` owns one server process (started on free loopback ports with its data in a
temporary directory, stopped by PID). A :class:`Client` is one connection used the way the
engine's own documentation recommends for throughput; every publish it reports is confirmed
durable as far as the engine confirms anything (see docs/performance.md for each engine).

Partitioned ("ordered") topics: engines without partitioned consumer groups get ``partitions``
separate queues/streams; a key picks one with :func:`partition_of`, and member ``i`` of ``m``
consumes partitions ``i, i+m, ...`` one message after another, which keeps per-key order.
"""

from __future__ import annotations

import abc
import asyncio
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

# on_message(body, key) -> True when the consumer should stop
OnMessage = Callable[[bytes, str | None], bool]


async def wait_any(*events: asyncio.Event) -> None:
    """Return when any of ``events`` is set."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


def partition_of(key: str, partitions: int) -> int:
    return zlib.crc32(key.encode()) % partitions


class Client(abc.ABC):
    #: how many single publishes a producer keeps in flight (pipelining window)
    window: int = 500
    #: consume idioms measured besides the default one (each a ``consume.<mode>`` row)
    extra_consume_modes: tuple[str, ...] = ()
    #: the consume idiom ``consume`` uses ("" is the default one)
    mode: str = ""

    def __init__(self) -> None:
        self.partitions: dict[str, int] = {}

    def use_partitions(self, topic: str, partitions: int) -> None:
        """Tell a client that did not declare ``topic`` how many partitions it has."""
        self.partitions[topic] = partitions

    @abc.abstractmethod
    async def connect(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def declare(
        self, topic: str, groups: Sequence[str], partitions: int = 1, ordered: bool = False
    ) -> None:
        """Create the topic and its groups (every group receives every message)."""

    @abc.abstractmethod
    async def publish_one(self, topic: str, body: bytes, key: str | None = None) -> None:
        """Publish one message; return once it is confirmed."""

    @abc.abstractmethod
    async def publish_batch(
        self, topic: str, bodies: Sequence[bytes], keys: Sequence[str] | None = None
    ) -> None:
        """Publish many messages in the engine's batched way; return once all are confirmed."""

    @abc.abstractmethod
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
        """Receive, call ``on_message`` and acknowledge each message, until ``stop`` is set
        (checked at least every second) or ``on_message`` returns True."""


class Engine(abc.ABC):
    name: str
    #: the server's name in reports (several engines may share one server kind)
    server: str
    #: True for engines measured through tidings itself (the ratios are tidings / peer)
    is_tidings: bool = False

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    @classmethod
    @abc.abstractmethod
    def available(cls) -> str | None:
        """None when the server and client library are installed, else what is missing."""

    @abc.abstractmethod
    def start(self) -> None:
        """Start the server and wait until it accepts clients."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop the server by its PID (graceful, then SIGKILL)."""

    @abc.abstractmethod
    def rss_bytes(self) -> int: ...

    def cpu_seconds(self) -> float | None:
        """CPU time the server process has used so far (None: not measured for this engine)."""
        return None

    @abc.abstractmethod
    def client(self) -> Client: ...

    @abc.abstractmethod
    def version(self) -> str: ...

    async def wait_recovered(self, topic: str) -> None:
        """After a restart: wait until ``topic`` is served again (default: nothing more)."""
        return None

    def shutdown(self) -> None:
        """Stop the server and anything started with it (after the last workload)."""
        self.stop()
