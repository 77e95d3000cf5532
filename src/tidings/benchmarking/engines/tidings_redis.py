"""tidings over Redis Streams: ``tidings.connect("redis://...")`` on the ``redis`` engine's
server (the same redis-server, the same AOF settings), so that one run compares the tidings
layer (``redis://``, issue #22) with raw redis-py doing the same work: the report's
``tidings-redis / redis`` column."""

from __future__ import annotations

import asyncio
import time

from ... import connect
from ...errors import NotFound
from .base import Client
from .redis import RedisEngine
from .tidings import TidingsClient


class TidingsRedisClient(TidingsClient):
    raw = None  # type: ignore[assignment]  # no transport-level row: the client is the API


class TidingsRedisEngine(RedisEngine):
    name = "tidings-redis"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> Client:
        return TidingsRedisClient(self.url)

    async def wait_recovered(self, topic: str) -> None:
        deadline = time.monotonic() + 120
        while True:
            try:
                async with connect(self.url) as client:
                    await client.topic_info(topic)
                return
            except (NotFound, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"redis did not reload topic {topic}") from None
            except Exception:  # the server is still loading its AOF
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.05)
