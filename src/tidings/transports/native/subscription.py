"""A group member over ``tidings://``: a buffer of delivered messages and batched settling.

Deliveries arrive in DELIVER frames and wait in a deque until :meth:`next` takes them. Acks
(and nacks, extends, rejects) made in the same event-loop iteration travel in one frame; each
caller still learns its own outcome. Auto-ack members return credit as the application takes
messages, so a slow reader is never flooded. After a reconnect the member joins again: the
messages it had not handed out are dropped (the broker returned them to the group), and
settling a message of the old connection raises LeaseLost at once.
"""

from __future__ import annotations

import asyncio
import collections
from typing import TYPE_CHECKING, Any

from ...errors import Closed, LeaseLost, error_for_code
from ...model import Delivery, GroupSpec, Message
from ...protocol import constants
from ...protocol.messages import Ack, Credit, Deliver, Extend, Nack, Reject, SettleReply
from ..base import TransportSubscription

if TYPE_CHECKING:
    from .connection import Connection
    from .transport import NativeTransport


class NativeMessage(Message):
    __slots__ = ("_epoch",)

    def __init__(self, delivery: Delivery, settler: NativeSubscription | None, epoch: int):
        super().__init__(delivery, settler)
        self._epoch = epoch


_SETTLE = {
    constants.ACK: Ack,
    constants.NACK: Nack,
    constants.EXTEND: Extend,
    constants.REJECT: Reject,
}


class NativeSubscription(TransportSubscription):
    def __init__(self, transport: NativeTransport, spec: GroupSpec, prefetch: int) -> None:
        self.spec = spec
        self.prefetch = prefetch
        self.sub_id = 0
        self.member_id = ""
        self.epoch = 0
        self.conn: Connection | None = None
        self._transport = transport
        self._auto_ack = spec.auto_ack
        self._queue: collections.deque[Message] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed: BaseException | None = None
        self._credit = 0
        self._credit_threshold = max(1, prefetch // 4)
        self._batches: dict[int, tuple[list[Any], list[asyncio.Future[None]]]] = {}
        self._flush_scheduled = False

    # -- connection side ---------------------------------------------------------------------

    def attached(self, conn: Connection, sub_id: int, member_id: str) -> None:
        """Joined (again) on ``conn``; what was buffered from an older connection is void."""
        self.conn = conn
        self.sub_id = sub_id
        self.member_id = member_id
        self.epoch += 1
        self._queue.clear()
        self._credit = 0

    def delivered(self, body: Deliver) -> None:
        settler = None if self._auto_ack else self
        epoch = self.epoch
        self._queue.extend([NativeMessage(d, settler, epoch) for d in body.deliveries])
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def fail(self, exc: BaseException) -> None:
        """End the subscription: the consumer's next() raises ``exc`` once the buffer is empty."""
        if self._closed is None:
            self._closed = exc
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def closed(self) -> bool:
        return self._closed is not None

    # -- consuming ---------------------------------------------------------------------------

    async def next(self, timeout: float | None = None) -> Message | None:
        queue = self._queue
        if not queue:
            if self._closed is not None:
                raise self._closed
            if not await self._wait(timeout):
                return None
        message = queue.popleft()
        if self._auto_ack:
            self._took(1)
        return message

    async def next_batch(self, max_count: int, timeout: float | None = None) -> list[Message]:
        queue = self._queue
        if not queue:
            if self._closed is not None:
                raise self._closed
            if not await self._wait(timeout):
                return []
        n = min(max_count, len(queue))
        batch = [queue.popleft() for _ in range(n)]
        if self._auto_ack:
            self._took(n)
        return batch

    async def _wait(self, timeout: float | None) -> bool:
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        handle = None if timeout is None else loop.call_later(timeout, _wake, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if handle is not None:
                handle.cancel()
        if self._queue:
            return True
        if self._closed is not None:
            raise self._closed
        return False

    def _took(self, n: int) -> None:
        self._credit += n
        if self._credit >= self._credit_threshold and self.conn is not None:
            self.conn.send(constants.CREDIT, Credit(self.sub_id, self._credit))
            self._credit = 0

    # -- settling ----------------------------------------------------------------------------

    async def ack(self, message: Message) -> None:
        await self._settle(constants.ACK, message, None)

    async def nack(self, message: Message, delay: float = 0.0, error: str | None = None) -> None:
        await self._settle(constants.NACK, message, (float(delay), error))

    async def extend(self, message: Message, seconds: float) -> None:
        await self._settle(constants.EXTEND, message, (float(seconds),))

    async def reject(self, message: Message, reason: str = "rejected") -> None:
        await self._settle(constants.REJECT, message, (reason,))

    async def _settle(self, kind: int, message: Message, extra: tuple | None) -> None:
        if self._closed is not None:
            raise Closed("the subscription is closed; the message will be redelivered")
        if getattr(message, "_epoch", self.epoch) != self.epoch:
            raise LeaseLost(
                "the connection to the broker was lost after this message was delivered; "
                "its lease was released and it will be redelivered"
            )
        batch = self._batches.get(kind)
        if batch is None:
            batch = self._batches[kind] = ([], [])
        items, futures = batch
        if kind == constants.ACK:
            items += (message.partition, message.offset)
        else:
            items.append((message.partition, message.offset, *extra))  # type: ignore[misc]
        fut = asyncio.get_running_loop().create_future()
        futures.append(fut)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        await fut

    def _flush(self) -> None:
        self._flush_scheduled = False
        batches, self._batches = self._batches, {}
        for kind, (items, futures) in batches.items():
            fut = self._transport.settle_request(self, kind, _SETTLE[kind](self.sub_id, items))
            fut.add_done_callback(lambda f, futures=futures: _resolve(f, futures))

    async def close(self) -> None:
        if self._closed is not None:
            return
        self.fail(Closed("the subscription is closed"))
        self._queue.clear()
        await self._transport.unsubscribe(self)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _resolve(reply: asyncio.Future[SettleReply], futures: list[asyncio.Future[None]]) -> None:
    if reply.cancelled():
        exc: BaseException | None = asyncio.CancelledError()
    else:
        exc = reply.exception()
    if exc is not None:
        for fut in futures:
            if not fut.done():
                fut.set_exception(exc)
        return
    errors = {index: error_for_code(code, text) for index, code, text in reply.result().errors}
    for index, fut in enumerate(futures):
        if fut.done():
            continue
        error = errors.get(index)
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(error)
