"""Coalescing single publishes: many ``publish``/``publish_async`` calls, one frame each turn.

Each topic has a *lane*: a queue of (message, future) and at most one batch in flight. A
publish appends to its lane and, if no batch is in flight, starts the lane's pump (one Task
per batch, never one per message). The pump takes everything queued when it runs (up to
``max_count`` messages and ``max_bytes`` of bodies), sends it as one ``publish`` of many, and
resolves the futures from the receipts in bulk; what was published meanwhile goes in the
next batch. So concurrent publishes of one event-loop turn, and everything published while a
batch waits for its fsync, travel together, as Kafka producers batch during their linger.

One batch in flight per topic keeps a producer's order: a batch and its retries (same
producer ids, so the broker deduplicates) finish before the next batch is sent.

The broker appends a batch all or nothing. When a coalesced batch is refused for a reason that
may concern one message (:class:`BadRequest`, :class:`TopicFull`), each message is sent again
alone, in order, so each future gets its own answer and one bad message fails only its own
publish. Every other failure fails the whole batch: the topic is gone or forbidden, the
connection could not be restored within the retries, or the broker's storage failed (then the
messages may be appended but not durable, and a retry with the same ids is deduplicated).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from ..errors import BadRequest, TopicFull
from ..ids import default_snowflake
from ..model import Outgoing, Receipt

Send = Callable[[str, list[Outgoing]], Awaitable[list[Receipt]]]

#: messages one coalesced batch holds at most (the broker's default --max-batch is 10,000)
MAX_COUNT = 1000
#: body bytes one coalesced batch holds at most
MAX_BYTES = 1 << 20


class _Lane:
    __slots__ = ("pump", "queue", "topic")

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.queue: deque[tuple[Outgoing, asyncio.Future[Receipt]]] = deque()
        self.pump: asyncio.Task[None] | None = None


class PublishPipeline:
    """The lanes of one client. ``send(topic, messages)`` publishes one batch with retries;
    ``stable_ids``: give messages without a ``msg_id`` a Snowflake id (once, before the first
    send) so a retried batch is deduplicated."""

    def __init__(
        self,
        send: Send,
        *,
        stable_ids: bool,
        max_count: int = MAX_COUNT,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self._send = send
        self.stable_ids = stable_ids
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._lanes: dict[str, _Lane] = {}

    def submit(self, topic: str, message: Outgoing) -> asyncio.Future[Receipt]:
        """Queue ``message`` (already checked) and return the future of its receipt."""
        lane = self._lanes.get(topic)
        if lane is None:
            lane = self._lanes[topic] = _Lane(topic)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Receipt] = loop.create_future()
        lane.queue.append((message, fut))
        if lane.pump is None:
            lane.pump = loop.create_task(self._pump(lane))
        return fut

    @property
    def pending(self) -> int:
        """Messages queued or in flight, not yet answered."""
        return sum(len(lane.queue) for lane in self._lanes.values())

    async def flush(self) -> None:
        """Wait until every publish queued so far has its answer (receipt or error)."""
        pumps = [lane.pump for lane in self._lanes.values() if lane.pump is not None]
        if pumps:
            await asyncio.wait(pumps)

    def fail_all(self, exc: BaseException) -> None:
        """Fail every queued publish with ``exc`` (the client is closing)."""
        for lane in self._lanes.values():
            while lane.queue:
                _, fut = lane.queue.popleft()
                if not fut.done():
                    fut.set_exception(exc)
            if lane.pump is not None:
                lane.pump.cancel()

    # -- the pump ----------------------------------------------------------------------------

    def _take(self, lane: _Lane) -> tuple[list[Outgoing], list[asyncio.Future[Receipt]]]:
        queue = lane.queue
        messages: list[Outgoing] = []
        futures: list[asyncio.Future[Receipt]] = []
        size = 0
        max_count, max_bytes = self.max_count, self.max_bytes
        while queue and len(messages) < max_count and (size < max_bytes or not messages):
            message, fut = queue.popleft()
            if fut.done():  # cancelled before it was sent: it is not sent
                continue
            messages.append(message)
            futures.append(fut)
            size += len(message.body)
        if self.stable_ids:
            need = [m for m in messages if m.msg_id is None]
            if need:
                for m, msg_id in zip(need, default_snowflake().next_strs(len(need)), strict=True):
                    m.msg_id = msg_id
        return messages, futures

    async def _pump(self, lane: _Lane) -> None:
        messages: list[Outgoing] = []
        futures: list[asyncio.Future[Receipt]] = []
        try:
            while lane.queue:
                messages, futures = self._take(lane)
                if messages:
                    await self._deliver(lane.topic, messages, futures)
                messages, futures = [], []
        except asyncio.CancelledError:
            for fut in futures:
                if not fut.done():
                    fut.cancel()
            raise
        finally:
            lane.pump = None

    async def _deliver(
        self, topic: str, messages: list[Outgoing], futures: list[asyncio.Future[Receipt]]
    ) -> None:
        try:
            receipts = await self._send(topic, messages)
        except (BadRequest, TopicFull) as exc:
            if len(messages) == 1:
                _fail(futures[0], exc)
                return
            for message, fut in zip(messages, futures, strict=True):  # each alone, in order
                try:
                    receipt = (await self._send(topic, [message]))[0]
                except Exception as one:
                    _fail(fut, one)
                else:
                    if not fut.done():
                        fut.set_result(receipt)
            return
        except Exception as exc:
            for fut in futures:
                _fail(fut, exc)
            return
        for fut, receipt in zip(futures, receipts, strict=True):
            if not fut.done():
                fut.set_result(receipt)


def _fail(fut: asyncio.Future[Receipt], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
