"""Temporary reply topics for request/reply: private memory streams, cleaned up even after a crash.

A reply topic is a memory stream named ``_tidings.reply.<owner>.<random>``, where ``owner`` is the
creating connection's id; nobody else knows the random name. :meth:`ReplyTopics.close` deletes
them with the connection. So that a crashed process leaves nothing behind for long, an owner
with reply topics heartbeats ``tidings-state.owners.<owner>`` every minute, and the first reply
topic a connection creates sweeps away the reply topics of owners silent for five minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

import nats.js.errors

from ...model import TopicSpec
from .codec import new_id
from .naming import REPLY_TOPIC_PREFIX, STATE_STREAM

if TYPE_CHECKING:
    from .transport import NatsTransport

log = logging.getLogger("tidings.transports.nats")

OWNER_SUBJECT = "tidings-state.owners"
HEARTBEAT = 60.0
STALE_AFTER = 300.0


class ReplyTopics:
    def __init__(self, transport: NatsTransport) -> None:
        self._t = transport
        self.owner = new_id()
        self._names: list[str] = []
        self._task: asyncio.Task[None] | None = None

    async def create(self) -> str:
        name = f"{REPLY_TOPIC_PREFIX}{self.owner}.{new_id()}"
        spec = TopicSpec(
            name=name, storage="memory", temporary=True, dedup_window=0, max_age=3600.0
        )
        if self._task is None:
            await self._beat()
            self._task = asyncio.create_task(self._run(), name="tidings-reply-owner")
            with contextlib.suppress(Exception):
                await self.sweep()
        await self._t.create_topic(spec, exist_ok=False)
        self._names.append(name)
        return name

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for name in self._names:
            with contextlib.suppress(Exception):
                await self._t.delete_topic(name)
        self._names.clear()

    async def _beat(self) -> None:
        await self._t.js.publish(f"{OWNER_SUBJECT}.{self.owner}", b"")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                await self._beat()
            except Exception as exc:
                log.warning("reply topic owner heartbeat failed: %s", exc)

    async def sweep(self) -> None:
        """Delete the reply topics of owners that stopped heart-beating."""
        seen: dict[str, bool] = {}
        for spec in await self._t.list_topics():
            if not spec.temporary or not spec.name.startswith(REPLY_TOPIC_PREFIX):
                continue
            owner = spec.name[len(REPLY_TOPIC_PREFIX) :].split(".", 1)[0]
            if owner == self.owner:
                continue
            if owner not in seen:
                seen[owner] = await self._stale(owner)
            if seen[owner]:
                log.info("deleting reply topic %s of a vanished connection", spec.name)
                with contextlib.suppress(Exception):
                    await self._t.delete_topic(spec.name)

    async def _stale(self, owner: str) -> bool:
        try:
            raw = await self._t.js.get_msg(STATE_STREAM, subject=f"{OWNER_SUBJECT}.{owner}")
        except nats.js.errors.NotFoundError:
            return True
        return raw.time is None or time.time() - raw.time.timestamp() > STALE_AFTER
