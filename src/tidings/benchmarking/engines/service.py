"""tidings through the service framework: ``tidings.Service`` handlers on ``tidings://``.

The broker is the same as the ``tidings`` engine's. Consumers are ``@svc.on`` handlers (payload
typed ``bytes``, a ``Context`` for the key, default middleware: tracing and logging); every
handler return is an ack. A handler's prefetch is its ``concurrency`` (what users get), so the
bench gives it the plain loop's credit window: ``concurrency=1000`` shared, as the plain
loop's ``prefetch=1000``; 256 ordered, as the plain loop's ``in_flight_per_partition=256``.
Publishes go through ``svc.publish`` (codec, headers, Snowflake message id, publish
middleware); a batch is one ``svc.publish_many`` (each message still through the middleware,
one round trip).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

from ...service import Context, Service
from .base import Client, OnMessage, wait_any
from .tidings import PREFETCH, TidingsClient, TidingsEngine

#: shared: the plain loop's prefetch; ordered: its in_flight_per_partition
CONCURRENCY = PREFETCH
ORDERED_CONCURRENCY = 256
_names = itertools.count()


class ServiceClient(TidingsClient):
    extra_consume_modes = ()
    publish_futures = None  # type: ignore[assignment]  # no such row for a Service
    raw = None  # type: ignore[assignment]  # nor a transport-level one

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url
        self.svc = Service(f"bench-producer-{next(_names)}", url=url)

    async def connect(self) -> None:
        await super().connect()
        # start() connects once; concurrent first publishes would each open a connection
        await self.svc.start()

    async def close(self) -> None:
        await self.svc.stop(grace=0)
        await super().close()

    async def publish_one(self, topic: str, body: bytes, key: str | None = None) -> None:
        await self.svc.publish(topic, body, key=key)

    async def publish_batch(
        self, topic: str, bodies: Sequence[bytes], keys: Sequence[str] | None = None
    ) -> None:
        await self.svc.publish_many(topic, bodies, keys=keys)

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
        svc = Service(f"bench-consumer-{next(_names)}", url=self.url)
        finished = asyncio.Event()

        @svc.on(
            topic,
            group=group,
            mode="ordered" if ordered else "shared",
            concurrency=ORDERED_CONCURRENCY if ordered else CONCURRENCY,
        )
        async def handle(body: bytes, ctx: Context) -> None:
            if on_message(body, ctx.key):
                finished.set()

        async with svc.running():
            await wait_any(finished, stop)


class ServiceEngine(TidingsEngine):
    name = "tidings-svc"

    def client(self) -> Client:
        return ServiceClient(self.url)
