"""A group member over ``tidings://``: a buffer of delivered messages and batched settling.

Deliveries arrive in DELIVER frames and wait in a deque until :meth:`next` takes them. Acks
(and nacks, extends, rejects) made in the same event-loop iteration travel in one frame; each
caller still learns its own outcome. Auto-ack members return credit as the application takes
messages, so a slow reader is never flooded. After a reconnect the member joins again: the
messages it had not handed out are dropped (the broker returned them to the group), and
settling a message of the old connection raises LeaseLost at once.

The settles of one frame share one future: its result maps the indexes the broker refused to
their error, and each caller raises its own (LeaseLost, ...). ``NativeMessage`` settles
straight into the subscription (one coroutine, not three). Measured on the consume benchmark
(2 cores): a future per ack plus the coroutine chain were ~10% of the client's CPU.
The shared future ignores ``cancel()``: cancelling one waiter must not fail the others, so a
cancelled caller raises CancelledError when the frame's reply (or its timeout) arrives.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ...errors import Closed, LeaseLost, error_for_code
from ...model import Delivery, GroupSpec, Message
from ...protocol import constants
from ...protocol.messages import Ack, Credit, Deliver, Extend, Nack, Reject, SettleReply
from ..base import SubscribeOptions, TransportSubscription
from ..leasing import LeaseRenewer

if TYPE_CHECKING:
    from .connection import Connection
    from .transport import NativeTransport

log = logging.getLogger("tidings.transports.tidings")

MAX_SETTLE_BATCH = 256  # settles per frame before it goes out without waiting for the turn


class NativeMessage(Message):
    __slots__ = ("_epoch",)

    _settler: NativeSubscription | None

    def __init__(self, delivery: Delivery, settler: NativeSubscription | None, epoch: int):
        super().__init__(delivery, settler)
        self._epoch = epoch

    async def ack(self) -> None:
        sub = self._settler
        if sub is not None and not self.settled:
            self.settled = True
            shared, index = sub._enqueue(constants.ACK, self, None)
            if sub.confirm_acks:
                refused = await shared
                if refused and index in refused:
                    raise error_for_code(*refused[index])


Refused = dict[int, tuple[int, str]]
"""The refused settles of one settle frame: ``{index in the frame: (error code, text)}``."""


class _Shared(asyncio.Future["Refused | None"]):
    """The future of one settle frame, awaited by every caller in it: never cancelled."""

    def cancel(self, msg: Any = None) -> bool:
        return False


_SETTLE = {
    constants.ACK: Ack,
    constants.NACK: Nack,
    constants.EXTEND: Extend,
    constants.REJECT: Reject,
}


class NativeSubscription(TransportSubscription):
    def __init__(
        self,
        transport: NativeTransport,
        spec: GroupSpec,
        prefetch: int,
        options: SubscribeOptions | None = None,
    ) -> None:
        options = options or SubscribeOptions()
        self.spec = spec
        self.prefetch = prefetch
        self.prefetch_bytes = options.prefetch_bytes
        self.confirm_acks = options.confirm_acks
        self.leases: LeaseRenewer[Message] = LeaseRenewer(
            spec.lease,
            self._extend_many,
            max_extension=0.0 if spec.auto_ack else options.max_lease_extension,
        )
        # Unconfirmed, a batch this big goes out at once, not at the end of the loop turn: a
        # consumer that never waits (its buffer is full) still returns credit while it works.
        # Confirmed acks wait, so the loop turns: its frames are only bounded in size.
        self._flush_at = (
            MAX_SETTLE_BATCH if self.confirm_acks else min(MAX_SETTLE_BATCH, max(8, prefetch // 2))
        )
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
        self._batches: dict[int, tuple[list[Any], _Shared, list[int]]] = {}
        self._flush_scheduled = False

    # -- connection side ---------------------------------------------------------------------

    def attached(self, conn: Connection, sub_id: int, member_id: str) -> None:
        """Joined (again) on ``conn``; what was buffered from an older connection is void."""
        self.conn = conn
        self.sub_id = sub_id
        self.member_id = member_id
        self.epoch += 1
        self._queue.clear()
        self.leases.clear()
        self._credit = 0

    def delivered(self, body: Deliver) -> None:
        settler = None if self._auto_ack else self
        epoch = self.epoch
        messages = [NativeMessage(d, settler, epoch) for d in body.deliveries]
        self._queue.extend(messages)
        leases = self.leases
        if leases.enabled:
            now = time.monotonic()
            for message in messages:
                leases.track(message, now)
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
        while True:
            if not queue:
                if self._closed is not None:
                    raise self._closed
                if not await self._wait(timeout):
                    return None
            message = queue.popleft()
            if self._auto_ack:
                self._took(1)
                return message
            if self._admit(message):
                return message

    async def next_batch(self, max_count: int, timeout: float | None = None) -> list[Message]:
        queue = self._queue
        while True:
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
            batch = [m for m in batch if self._admit(m)]
            if batch:
                return batch

    def _admit(self, message: Message) -> bool:
        """Hand ``message`` out only with a live lease (else the broker redelivers it)."""
        if self.leases.take(message):
            return True
        self.leases.release(message)
        if self.conn is not None:  # the consumer is taking messages: that lease's credit returns
            self.conn.send(constants.CREDIT, Credit(self.sub_id, 1))
        return False

    async def _extend_many(self, messages: list[Message]) -> list[Message]:
        """One EXTEND frame for all of ``messages``; the ones the broker refused come back."""
        refused: list[Message] = []
        sent: list[tuple[Message, _Shared, int]] = []
        extra = (float(self.spec.lease),)
        for message in messages:
            try:
                shared, index = self._enqueue(constants.EXTEND, message, extra)
            except (LeaseLost, Closed):
                refused.append(message)
                continue
            sent.append((message, shared, index))
        results: dict[int, Refused | None] = {}
        for message, shared, index in sent:
            key = id(shared)
            if key not in results:
                results[key] = await shared
            errors = results[key]
            if errors and index in errors:
                refused.append(message)
        return refused

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
        shared, index = self._enqueue(constants.ACK, message, None)
        if self.confirm_acks:
            refused = await shared
            if refused and index in refused:
                raise error_for_code(*refused[index])

    async def ack_many(self, messages: Sequence[Message]) -> None:
        waits = []
        first: BaseException | None = None
        for message in messages:
            if message._settler is self and not message.settled:
                message.settled = True
                try:
                    waits.append(self._enqueue(constants.ACK, message, None))
                except (LeaseLost, Closed) as exc:  # known here: no round trip needed
                    first = first or exc
        if not self.confirm_acks:
            if first is not None:
                raise first
            return
        results: dict[int, Any] = {}
        for shared, index in waits:
            key = id(shared)
            if key not in results:
                try:
                    results[key] = await shared
                except BaseException as exc:  # the whole frame failed
                    results[key] = exc
            outcome = results[key]
            if isinstance(outcome, BaseException):
                first = first or outcome
            elif outcome and index in outcome:
                first = first or error_for_code(*outcome[index])
        if first is not None:
            raise first

    async def nack(self, message: Message, delay: float = 0.0, error: str | None = None) -> None:
        await self._settle(constants.NACK, message, (float(delay), error))

    async def extend(self, message: Message, seconds: float) -> None:
        await self._settle(constants.EXTEND, message, (float(seconds),))

    async def reject(self, message: Message, reason: str = "rejected") -> None:
        await self._settle(constants.REJECT, message, (reason,))

    async def _settle(
        self, kind: int, message: Message, extra: tuple[float | str | None, ...] | None
    ) -> None:
        shared, index = self._enqueue(kind, message, extra)
        refused = await shared
        if refused and index in refused:
            raise error_for_code(*refused[index])

    def _enqueue(
        self, kind: int, message: Message, extra: tuple[float | str | None, ...] | None
    ) -> tuple[_Shared, int]:
        """Add a settle to this loop turn's frame of ``kind``: its future and index in it."""
        if self._closed is not None:
            raise Closed("the subscription is closed; the message will be redelivered")
        if getattr(message, "_epoch", self.epoch) != self.epoch:
            raise LeaseLost(
                "the connection to the broker was lost after this message was delivered; "
                "its lease was released and it will be redelivered"
            )
        batch = self._batches.get(kind)
        if batch is None:
            loop = asyncio.get_running_loop()
            batch = self._batches[kind] = ([], _Shared(loop=loop), [0])
            if not self._flush_scheduled:
                self._flush_scheduled = True
                loop.call_soon(self._flush)
        items, shared, count = batch
        if kind == constants.ACK:
            items += (message.partition, message.offset)
        else:
            assert extra is not None  # NACK, EXTEND and REJECT carry their arguments
            items.append((message.partition, message.offset, *extra))
        if kind != constants.EXTEND:
            self.leases.release(message)
        index = count[0]
        count[0] = index + 1
        if index + 1 >= self._flush_at:
            self._flush_kind(kind)
        return shared, index

    def flush_settles(self) -> None:
        """Send the settles gathered so far now (a request that must see them follows)."""
        if self._batches:
            self._flush()

    def _flush(self) -> None:
        self._flush_scheduled = False
        batches, self._batches = self._batches, {}
        for kind, batch in batches.items():
            self._send(kind, batch)

    def _flush_kind(self, kind: int) -> None:
        """Send the batch of ``kind`` now (it is full) and write it without waiting."""
        batch = self._batches.pop(kind)
        self._send(kind, batch)
        if self.conn is not None:
            self.conn.flush()

    def _send(self, kind: int, batch: tuple[list[Any], _Shared, list[int]]) -> None:
        items, shared, _ = batch
        transport = self._transport
        fut = transport.settle_request(self, kind, _SETTLE[kind](self.sub_id, items))
        fut.add_done_callback(functools.partial(_resolve, transport, kind, shared=shared))
        if kind == constants.ACK and not self.confirm_acks:
            shared.add_done_callback(_unconfirmed)

    def closed_by_broker(self, exc: BaseException) -> None:
        """The broker removed the member: its leases are gone, so nothing buffered is handed
        out; ``next()`` raises ``exc`` (``MemberStuck``, or ``NotFound`` for a deleted group)."""
        self._queue.clear()
        self.leases.clear()
        self.fail(exc)

    async def close(self) -> None:
        if self._closed is not None:
            await self.leases.close()  # closed by the broker: stop the renewer too
            return
        if self._batches:
            self._flush()  # settles made before close go out before UNSUBSCRIBE
        self.fail(Closed("the subscription is closed"))
        # what the application never got goes back uncounted (auto-ack: nothing is held)
        unhanded = (
            None
            if self._auto_ack
            else [n for msg in self._queue for n in (msg.partition, msg.offset)]
        )
        self._queue.clear()
        await self.leases.close()
        await self._transport.unsubscribe(self, unhanded)


def _unconfirmed(shared: _Shared) -> None:
    """Nobody waits for an unconfirmed ack frame: say what the broker refused, in the log."""
    if shared.cancelled():
        return
    exc = shared.exception()
    if exc is not None:
        log.warning("acks were not confirmed (their messages will be redelivered): %s", exc)
    elif refused := shared.result():
        code, text = next(iter(refused.values()))
        log.warning(
            "the broker refused %d of the acks of one frame (code %s: %s); the messages were "
            "or will be redelivered",
            len(refused),
            code,
            text,
        )


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _resolve(
    transport: NativeTransport, kind: int, reply: asyncio.Future[SettleReply], shared: _Shared
) -> None:
    """Split a settle frame's reply: the shared future gets ``{index: (code, text)}`` of the
    refused settles, or the frame's error (mapped for callers) if the frame failed."""
    if reply.cancelled():
        shared.set_exception(asyncio.CancelledError())
    elif (exc := reply.exception()) is not None:
        shared.set_exception(transport.settle_error(kind, exc))
    else:
        errors = reply.result().errors
        shared.set_result({i: (code, text) for i, code, text in errors} if errors else None)
