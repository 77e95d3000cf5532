"""A member of a group on amqp://: consuming its quorum queue(s), leases, settling.

RabbitMQ keeps an un-acknowledged message with the channel it was delivered on until the
member acks or nacks it, or the channel closes (then it returns to the queue, and the quorum
queue counts the return in ``x-delivery-count``). It has no visibility timeout, so the lease
is kept here, by the member's transport:

- a message's lease ends ``lease`` seconds after it arrived, later when extended (``extend``,
  or the client's automatic extension of what it buffers and holds, :mod:`..leasing`); an
  extension is local and always granted;
- when a lease runs out, the transport takes the message back: it is requeued (RabbitMQ
  redelivers it, to any member, with the count + 1) or, on its last allowed delivery,
  dead-lettered; a later ack of it raises LeaseLost;
- a member whose lease ran out while the application was not waiting for a message is
  *stuck*: it stops consuming (basic.cancel) until the application takes or settles a
  message again, so its messages go to the other members and are not fed back to it (credit
  comes back on settlement, not on expiry);
- a process that dies loses its connection: RabbitMQ returns everything it held at once;
- a connection that drops while the process lives is re-opened by the transport
  (:mod:`.reconnect`): the member forgets what it had received (RabbitMQ delivers it again;
  settling it raises LeaseLost, its delivery tag belonged to the old channel) and consumes
  again on a new channel.

``nack(delay)`` keeps the message with this member, un-acknowledged and invisible to the others,
for ``delay`` seconds, then requeues it (stock RabbitMQ has no delayed requeue): the delay
holds a prefetch slot, and if the process dies meanwhile the message comes back at once.

Admission, nack and reject follow the engine-neutral rules of :mod:`..rules` shared with the
other transports: past ``max_deliveries`` a message is dead-lettered, an expired TTL drops it
(or dead-letters it with ``dead_letter_expired``), a redrive for another group is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Any

import aio_pika
import aiormq.exceptions as amqp_errors

from ...errors import BadRequest, Closed, LeaseLost, TidingsError
from ...model import GroupSpec, Message, TopicSpec
from ..base import BufferedSubscription, SubscribeOptions
from ..leasing import LeaseRenewer
from ..rules.admission import admit, past_last_lease
from ..rules.settling import on_nack, on_reject
from .acks import AckBatcher
from .codec import Incoming
from .errors import translated

if TYPE_CHECKING:
    from .transport import AmqpTransport

log = logging.getLogger("tidings.transports.amqp")

MAX_ERRORS = 10_000  # last nack error texts kept for a later dead-letter (this member only)


class _Held:
    """A message the application holds: its lease and what settling it needs."""

    __slots__ = ("count", "deadline", "extended", "inc")

    def __init__(self, inc: Incoming, deadline: float, count: int) -> None:
        self.inc = inc
        self.deadline = deadline  # time.monotonic() when the lease runs out
        self.extended = 0.0  # an explicit extend() up to this time
        self.count = count


class AmqpSubscription(BufferedSubscription):
    def __init__(
        self,
        transport: AmqpTransport,
        spec: GroupSpec,
        topic: TopicSpec,
        queues: list[str],
        prefetch: int,
        options: SubscribeOptions | None = None,
    ) -> None:
        if prefetch < 1:
            raise BadRequest("prefetch must be >= 1")
        options = options or SubscribeOptions()
        self.spec = spec
        self.topic = topic
        self.prefetch = prefetch
        self.confirm_acks = options.confirm_acks
        self._t = transport
        self._queue_names = queues
        self.leases: LeaseRenewer[Incoming] = LeaseRenewer(
            spec.lease,
            self._extend_many,
            max_extension=0.0 if spec.auto_ack else options.max_lease_extension,
        )
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._queues: list[aio_pika.abc.AbstractQueue] = []
        self._tags: dict[int, str] = {}  # queue index (an ordered group's partition) -> tag
        self._buffer: deque[Incoming] = deque()
        self._held: dict[Message, _Held] = {}
        self._delayed: dict[Incoming, asyncio.TimerHandle] = {}
        self._errors: OrderedDict[str, str] = OrderedDict()
        self._arrived = asyncio.Event()
        self._waiting = 0  # next() calls waiting right now
        self._paused = False
        self._closed = False
        self._down = False  # the connection was lost; the transport is reconnecting
        self._failure: TidingsError | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.acks = AckBatcher()

    # ---------------------------------------------------------------- starting
    async def start(self) -> None:
        spec = self.spec
        with translated(f"join group {spec.name!r} of topic {spec.topic!r}"):
            await self._open_channel()
            await self._joined()
            await self._consume()
        self._sweeper = asyncio.create_task(self._sweep_loop(), name=f"tidings-amqp-{spec.name}")

    async def _open_channel(self) -> None:
        channel = await self._t.connection.channel()
        channel.close_callbacks.add(self._on_channel_closed)
        self._channel = channel
        # ordered: RabbitMQ's prefetch is per consumer, one consumer per partition queue
        per_consumer = self.prefetch
        if self.spec.mode == "ordered":
            per_consumer = min(self.prefetch, self.spec.in_flight_per_partition)
        await channel.set_qos(prefetch_count=per_consumer)
        self._queues = [await channel.get_queue(n, ensure=False) for n in self._queue_names]

    # ---------------------------------------------------------------- reconnecting
    def connection_lost(self) -> None:
        """The connection dropped: RabbitMQ returned everything this member had received, so
        none of it may be handed out or settled any more (a later ack raises LeaseLost; the
        old channel's delivery tags mean nothing on a new one)."""
        if self._closed or self._down:
            return
        self._down = True
        for inc in self._buffer:
            self.leases.release(inc)
        self._buffer.clear()
        for held in self._held.values():
            self.leases.release(held.inc)
        self._held.clear()
        for handle in self._delayed.values():
            handle.cancel()
        self._delayed.clear()
        self.acks = AckBatcher()  # the old channel's outstanding tags are void
        self._tags.clear()
        self._lost_channels()

    def _lost_channels(self) -> None:
        """An ordered member also forgets its partition channels."""

    async def reconnected(self) -> None:
        """The transport is connected again: consume on a new channel."""
        if self._closed:
            return
        with translated(f"resume group {self.spec.name!r} of topic {self.spec.topic!r}"):
            if self.topic.temporary:  # a reply inbox: exclusive, gone with the old connection
                await self._t.declare_inbox(self.topic, self.spec)
            await self._open_channel()
            await self._rejoined()
            self._down = False
            if not self._paused:
                await self._consume()

    async def _rejoined(self) -> None:
        """After a reconnect, before consuming (an ordered member registers again)."""

    def give_up(self, error: TidingsError) -> None:
        """The subscription could not resume after a reconnect: ``next()`` raises ``error``."""
        self._fail(error)

    async def _joined(self) -> None:
        """Before consuming (an ordered member registers itself)."""

    def _wanted(self) -> set[int]:
        """The queues to consume now (every one; an ordered member: the partitions it owns)."""
        return set(range(len(self._queues)))

    async def _consume(self) -> None:
        self._paused = False
        for index in sorted(self._wanted() - set(self._tags)):
            self._tags[index] = await self._queues[index].consume(self._on_message, no_ack=False)

    async def _cancel(self, index: int) -> None:
        tag = self._tags.pop(index, None)
        if tag is not None:
            with contextlib.suppress(Exception):
                await self._queues[index].cancel(tag)

    async def _pause(self) -> None:
        """Stop receiving (a stuck member): messages already here stay until settled."""
        if self._paused or self._closed:
            return
        self._paused = True
        for index in list(self._tags):
            await self._cancel(index)

    def _resume_soon(self) -> None:
        if self._paused and not self._closed:
            self._spawn(self._resume())

    async def _resume(self) -> None:
        if self._paused and not self._closed:
            try:
                await self._consume()
            except Exception as exc:
                self._fail(TidingsError(f"could not resume consuming: {exc}"))

    def _on_channel_closed(self, sender: Any, exc: BaseException | None = None) -> None:
        if self._closed or sender is not self._channel:
            return
        log.debug("amqp: the channel of group %s closed: %r", self.spec.name, exc)
        connection_went = isinstance(exc, amqp_errors.AMQPConnectionError | OSError)
        if self._down or connection_went or not self._t.is_open():
            self.connection_lost()  # the transport reconnects, then this member resumes
            return
        self._fail(Closed(f"the AMQP channel of group {self.spec.name!r} was closed ({exc})"))

    def _fail(self, error: TidingsError) -> None:
        self._failure = error
        self._arrived.set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---------------------------------------------------------------- receiving
    async def _on_message(self, raw: aio_pika.abc.AbstractIncomingMessage) -> None:
        await self._take_in(Incoming(raw, time.monotonic()))

    async def _take_in(self, inc: Incoming) -> None:
        if self._closed:
            return  # the channel's close returns it
        self.acks.arrived(inc)
        if past_last_lease(inc.count, self.spec.max_deliveries):
            # the member that held its last delivery went away: dead-letter it now, as the
            # built-in broker's lease timer would, not when the application next asks
            self._spawn(self._dead_letter(inc, "max-deliveries", inc.count - 1, None))
            return
        if self._paused:
            await self._requeue(inc)
            return
        if self.leases.enabled:
            self.leases.track(inc, inc.arrived)
        self._buffer.append(inc)
        self._arrived.set()

    async def next(self, timeout: float | None = None) -> Message | None:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        self._resume_soon()  # the application takes messages again
        while True:
            if self._closed:
                raise Closed(f"subscription to group {self.spec.name!r} is closed")
            if self._failure is not None:
                raise self._failure
            while self._buffer:
                message = await self._admit(self._buffer.popleft())
                if message is not None:
                    return message
            self._arrived.clear()
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return None
            self._waiting += 1
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await self._arrived.wait()
            finally:
                self._waiting -= 1

    def _lease_end(self, inc: Incoming) -> float:
        kept = self.leases.deadline(inc)
        return inc.arrived + self.spec.lease if kept is None else kept

    async def _admit(self, inc: Incoming) -> Message | None:
        spec = self.spec
        now = time.monotonic()
        if not spec.auto_ack and (self._lease_end(inc) <= now or not self.leases.alive(inc)):
            await self._expire(inc, inc.count)  # its lease ran out in the buffer
            return None
        wall = time.time()
        verdict = admit(
            spec, inc.count, now=wall, expires_at=inc.expires_at, redrive_group=inc.redrive_group
        )
        if verdict.action == "dead-letter":
            await self._dead_letter(inc, verdict.reason, verdict.deliveries, None)
            return None
        if verdict.action != "deliver":  # dropped (amqp:// has no delays to defer)
            await self._finish(inc)
            return None
        lease_end = self._lease_end(inc)
        lease_until = None if spec.auto_ack else wall + (lease_end - now)
        message = Message(
            inc.delivery(spec.topic, spec.name, inc.count, lease_until),
            None if spec.auto_ack else self,
        )
        if spec.auto_ack:
            await self._finish(inc)
        else:
            self._held[message] = _Held(inc, lease_end, inc.count)
            self.leases.handed(inc)
        return message

    # ---------------------------------------------------------------- leases
    async def _extend_many(self, incs: list[Incoming]) -> list[Incoming]:
        """Extensions are local: the member keeps the message until it settles it."""
        return [inc for inc in incs if not self.acks.outstanding(inc)]

    def _deadline(self, held: _Held) -> float:
        kept = self.leases.deadline(held.inc)
        return max(held.deadline if kept is None else kept, held.extended)

    async def _sweep_loop(self) -> None:
        tick = max(0.05, min(0.25, self.spec.lease / 4))
        while not self._closed:
            await asyncio.sleep(tick)
            try:
                await self._sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("amqp: lease sweep of group %s failed: %s", self.spec.name, exc)

    async def _sweep(self) -> None:
        if self.spec.auto_ack:
            return
        now = time.monotonic()
        expired: list[tuple[Incoming, int]] = []
        for message, held in list(self._held.items()):
            if self._deadline(held) <= now:
                del self._held[message]
                expired.append((held.inc, held.count))
        if self._buffer:
            keep: deque[Incoming] = deque()
            for inc in self._buffer:
                if self._lease_end(inc) <= now:
                    expired.append((inc, inc.count))
                else:
                    keep.append(inc)
            self._buffer = keep
        if not expired:
            return
        if not self._waiting:
            await self._pause()  # first: nothing taken back may come to this member again
        for inc, count in expired:
            await self._expire(inc, count)

    async def _expire(self, inc: Incoming, count: int) -> None:
        """Its lease ran out: dead-letter on the last allowed delivery (the next delivery
        would be past it), else requeue."""
        if past_last_lease(count + 1, self.spec.max_deliveries):
            await self._dead_letter(inc, "max-deliveries", count, self._errors.pop(inc.id, None))
        else:
            await self._requeue(inc)

    async def _requeue(self, inc: Incoming) -> None:
        self.leases.release(inc)
        if not self.acks.outstanding(inc):
            return
        self.acks.forget(inc)
        with translated("return a message to its group"):
            # a delivery always has a tag (None only for messages built locally); 0 as in .acks
            await inc.raw.channel.basic_nack(delivery_tag=inc.raw.delivery_tag or 0, requeue=True)

    async def _finish(self, inc: Incoming, wait: bool = False) -> None:
        """Acknowledge (coalesced with the other acks of the next flush, :mod:`.acks`)."""
        self.leases.release(inc)
        if not self.acks.outstanding(inc):
            return
        written = self.acks.ack(inc, now=wait)
        if wait:
            with translated("acknowledge a message"):
                await asyncio.shield(written)

    # ---------------------------------------------------------------- settling
    def _take(self, message: Message) -> _Held:
        held = self._held.pop(message, None)
        if held is None:
            raise LeaseLost(
                "the message's lease ran out, or the connection it came on was lost, before it "
                "was settled: it went back to the group (or to the dead-letter topic); "
                "extend() keeps long work leased"
            )
        self._resume_soon()
        return held

    async def ack(self, message: Message) -> None:
        """Written to the channel at once (AMQP 0-9-1 acks are not confirmed by the server: a
        lost connection before it arrives means a redelivery)."""
        held = self._take(message)
        self._errors.pop(held.inc.id, None)
        await self._finish(held.inc, wait=self.confirm_acks)

    async def nack(self, message: Message, delay: float = 0.0, error: str | None = None) -> None:
        held = self._take(message)
        inc = held.inc
        verdict = on_nack(self.spec, held.count, delay)
        if verdict.action == "dead-letter":
            self._errors.pop(inc.id, None)
            await self._dead_letter(inc, verdict.reason, verdict.deliveries, error)
            return
        if error is not None:
            self._errors[inc.id] = error
            self._errors.move_to_end(inc.id)
            while len(self._errors) > MAX_ERRORS:
                self._errors.popitem(last=False)
        if verdict.delay > 0:
            self.leases.release(inc)
            loop = asyncio.get_running_loop()
            self._delayed[inc] = loop.call_later(verdict.delay, self._delay_over, inc)
            return
        await self._requeue(inc)

    def _delay_over(self, inc: Incoming) -> None:
        if self._delayed.pop(inc, None) is not None and not self._closed:
            self._spawn(self._requeue(inc))

    async def extend(self, message: Message, seconds: float) -> None:
        held = self._held.get(message)
        if held is None:
            raise LeaseLost("the message's lease ran out before extend(): it went back")
        held.extended = time.monotonic() + max(seconds, 0.001)

    async def reject(self, message: Message, reason: str = "rejected") -> None:
        held = self._take(message)
        self._errors.pop(held.inc.id, None)
        # as on the built-in broker: the reason header says "rejected"; the consumer's own
        # words are the error text
        verdict = on_reject(held.count)
        await self._dead_letter(held.inc, verdict.reason, verdict.deliveries, reason)

    async def _dead_letter(
        self, inc: Incoming, reason: str, deliveries: int, error: str | None
    ) -> None:
        if error is None:
            error = self._errors.pop(inc.id, None)
        await self._t.dead_letter(self.topic, self.spec, inc, reason, deliveries, error)
        await self._finish(inc)

    # ---------------------------------------------------------------- closing
    async def _leaving(self) -> None:
        """Before the channel closes (an ordered member says goodbye)."""

    async def close(self) -> None:
        """Leave the group: RabbitMQ returns what this member held when its channel closes."""
        if self._closed:
            return
        self._closed = True
        self._arrived.set()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._sweeper
        for handle in self._delayed.values():
            handle.cancel()
        self._delayed.clear()
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task
        await self.leases.close()
        await self.acks.flush()  # before the channel closes, or they would come again
        self._buffer.clear()
        self._held.clear()
        await self._leaving()
        if self._channel is not None and not self._channel.is_closed:
            with contextlib.suppress(Exception):
                await self._channel.close()
        self._t.forget(self)
