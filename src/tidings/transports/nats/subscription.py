"""What every nats:// group member shares: the local buffer, admission rules and settling.

Messages pulled from JetStream wait in a local buffer (never more than ``prefetch`` buffered
plus held). Before a message is handed to the application it is *admitted*:

- a buffered message whose lease ran out meanwhile is dropped (JetStream redelivers it);
- past ``max_deliveries`` (a lease expired on the last allowed delivery) it is dead-lettered;
- an expired TTL drops it (or dead-letters it with ``dead_letter_expired``);
- before its delay it is negatively acknowledged with the remaining delay and the early
  delivery is recorded, so that the application's delivery count does not include it.

Settling maps onto JetStream acknowledgements confirmed by the server (acks pipelined, the
others awaited): ack = ``+ACK``,
nack(delay) = ``-NAK {"delay"}``, extend(seconds) = ``-NAK {"delay": seconds}`` (the message
stays with this member and can still be acked: JetStream only redelivers it after the delay),
reject = dead-letter then ``+ACK``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg

from ...errors import BadRequest, Closed, LeaseLost, NotFound, TidingsError
from ...model import GroupSpec, Message, TopicSpec
from ..base import BufferedSubscription, SubscribeOptions
from ..leasing import LeaseRenewer
from ..rules.admission import admit, past_last_lease
from ..rules.settling import on_nack, on_reject
from . import deadletter
from .codec import Incoming
from .errors import translate, translated
from .membership import Membership
from .puller import Puller

if TYPE_CHECKING:
    from .transport import NatsTransport

log = logging.getLogger("tidings.transports.nats")

ACK = b"+ACK"
NAK = b"-NAK"
IN_PROGRESS = b"+WPI"  # resets the ack wait (the lease) to a whole lease from now
SETTLE_TIMEOUT = 5.0


def nak_payload(delay: float) -> bytes:
    if delay <= 0:
        return NAK
    return NAK + b" " + json.dumps({"delay": int(delay * 1e9)}).encode()


class _Held:
    """A message the application holds: its lease and what settling it needs."""

    __slots__ = ("count", "deadline", "inc", "message", "skips")

    def __init__(self, inc: Incoming, message: Message, deadline: float, count: int, skips: int):
        self.inc = inc
        self.message = message
        self.deadline = deadline  # time.monotonic() when the lease runs out
        self.count = count
        self.skips = skips


class NatsSubscription(BufferedSubscription):
    def __init__(
        self,
        transport: NatsTransport,
        spec: GroupSpec,
        topic: TopicSpec,
        prefetch: int,
        options: SubscribeOptions | None = None,
    ) -> None:
        if prefetch < 1:
            raise BadRequest("prefetch must be >= 1")
        options = options or SubscribeOptions()
        self.confirm_acks = options.confirm_acks
        # Leases of what is buffered and held are kept with in-progress acks; the consumer's
        # ack wait is the lease, which +WPI restarts.
        self.leases: LeaseRenewer[Incoming] = LeaseRenewer(
            spec.lease,
            self._extend_many,
            max_extension=0.0 if spec.auto_ack else options.max_lease_extension,
        )
        self.spec = spec
        self.topic = topic
        self.prefetch = prefetch
        self._t = transport
        self._nc = transport.nc
        self._buffer: deque[Incoming] = deque()
        self._held: dict[int, _Held] = {}
        self._sweep_at = float("inf")  # earliest lease deadline among held messages
        self._arrived = asyncio.Event()
        self._pullers: dict[int | None, Puller] = {}
        self._closed = False
        self._failure: TidingsError | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._confirming: set[asyncio.Future[None]] = set()
        self.membership: Membership | None = None

    # ---------------------------------------------------------------- flow
    def free(self) -> int:
        if self._held and time.monotonic() >= self._sweep_at:
            self._sweep()
        return self.prefetch - len(self._buffer) - len(self._held) - self._withheld()

    def _withheld(self) -> int:
        """Messages received but not buffered yet (an ordered group's fenced partitions)."""
        return 0

    def _sweep(self) -> None:
        """Forget held messages whose lease ran out: their credit comes back (JetStream
        redelivers them, possibly to this member again)."""
        now = time.monotonic()
        leases = self.leases
        for seq, h in list(self._held.items()):
            kept = leases.deadline(h.inc)
            if kept is not None:
                h.deadline = kept
            if h.deadline <= now:
                del self._held[seq]
                leases.release(h.inc)
        self._sweep_at = min((h.deadline for h in self._held.values()), default=float("inf"))

    async def _extend_many(self, incs: list[Incoming]) -> list[Incoming]:
        """In-progress acks for ``incs`` (pipelined; JetStream confirms each)."""
        send = self._t.acks.send
        futures = [await send(inc.reply, IN_PROGRESS, timeout=SETTLE_TIMEOUT) for inc in incs]
        results = await asyncio.gather(*futures, return_exceptions=True)
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        if failed is not None:
            raise failed
        return []  # JetStream answers an in-progress ack of a message it took back alike

    def _wake_pullers(self) -> None:
        for p in self._pullers.values():
            p.wake()

    def _sink(self, msg: Msg) -> None:
        try:
            inc = Incoming(msg, time.monotonic())
        except (ValueError, IndexError):
            log.warning("ignoring a malformed JetStream delivery on %s", msg.subject)
            return
        count = inc.ack.num_delivered
        if inc.deliver_at is None and past_last_lease(count, self.spec.max_deliveries):
            # Its last lease expired: dead-letter it now, as the built-in broker's timer does,
            # not when the application next asks for a message (it may never ask).
            task = asyncio.create_task(self._dead_letter(inc, "max-deliveries", count - 1, None))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        if self.leases.enabled:
            self.leases.track(inc, inc.arrived)
        self._accept(inc)

    def _accept(self, inc: Incoming) -> None:
        """Buffer a delivered message for the application (ordered groups may hold it back)."""
        self._buffer.append(inc)
        self._arrived.set()

    def _new_puller(self, stream: str, consumer: str, max_batch: int) -> Puller:
        async def on_silence() -> None:
            await self._check_consumer(stream, consumer)

        return Puller(self._nc, stream, consumer, self._sink, self.free, max_batch, on_silence)

    async def _check_consumer(self, stream: str, consumer: str) -> None:
        for attempt in range(2):
            try:
                await self._t.js.consumer_info(stream, consumer)
                return
            except nats.js.errors.NotFoundError:
                if attempt == 0:
                    await asyncio.sleep(1.0)  # a reset_group recreates it right away
        self._fail(NotFound(f"group {self.spec.name!r} of topic {self.spec.topic!r} was deleted"))

    def flush(self) -> None:
        """The group was reset: what was pulled before belongs to the old position."""
        self._buffer.clear()
        self._held.clear()
        self.leases.clear()
        self._wake_pullers()

    def _fail(self, error: TidingsError) -> None:
        self._failure = error
        self._arrived.set()

    # ---------------------------------------------------------------- receiving
    async def next(self, timeout: float | None = None) -> Message | None:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            if self._closed:
                raise Closed(f"subscription to group {self.spec.name!r} is closed")
            if self._failure is not None:
                raise self._failure
            while self._buffer:
                inc = self._buffer.popleft()
                self._wake_pullers()
                message = await self._admit(inc)
                if message is not None:
                    return message
            self._arrived.clear()
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._arrived.wait()

    async def _admit(self, inc: Incoming) -> Message | None:
        spec = self.spec
        now = time.monotonic()
        leases = self.leases
        if not spec.auto_ack:
            kept = leases.deadline(inc)
            if (kept is None and now - inc.arrived >= spec.lease) or not leases.alive(inc):
                leases.release(inc)
                return None  # its lease ran out in the buffer: JetStream redelivers it
        a = inc.ack
        state: dict[str, Any] = {}
        if inc.deliver_at is not None and a.num_delivered > 1:
            state = await self._t.state.get_msg_state(a.stream, a.consumer, a.stream_seq)
        skips = int(state.get("skips", 0))
        count = a.num_delivered - skips
        wall = time.time()
        verdict = admit(
            spec,
            count,
            now=wall,
            expires_at=inc.expires_at,
            deliver_at=inc.deliver_at,
            redrive_group=inc.redrive_group,
        )
        if verdict.action != "deliver":
            if verdict.action == "dead-letter":
                await self._dead_letter(inc, verdict.reason, verdict.deliveries, None)
            elif verdict.action == "drop":
                await self._finish(inc, ACK)
            else:  # defer: an early delivery, not counted (the skips say how many)
                state["skips"] = skips + 1
                await self._t.state.put_msg_state(a.stream, a.consumer, a.stream_seq, state)
                await self._settle(inc.reply, nak_payload(verdict.delay))
            leases.release(inc)
            return None
        kept = leases.deadline(inc)
        lease_end = inc.arrived + spec.lease if kept is None else kept
        lease_until = None if spec.auto_ack else wall + (lease_end - now)
        message = Message(
            inc.delivery(spec.topic, spec.name, count, lease_until),
            None if spec.auto_ack else self,
        )
        if spec.auto_ack:
            await self._finish(inc, ACK)
        else:
            self._held[a.stream_seq] = _Held(inc, message, lease_end, count, skips)
            self._sweep_at = min(self._sweep_at, lease_end)
            leases.handed(inc)
        return message

    # ---------------------------------------------------------------- settling
    def _take(self, message: Message, keep: bool = False) -> _Held:
        held = self._held.get(message.offset + 1)
        if held is not None and held.message is message:
            kept = self.leases.deadline(held.inc)
            if kept is not None:
                held.deadline = kept
        if held is None or held.message is not message or time.monotonic() >= held.deadline:
            if held is not None and held.message is message:
                del self._held[message.offset + 1]
                self.leases.release(held.inc)
            raise LeaseLost()
        if not keep:
            del self._held[message.offset + 1]
            self.leases.release(held.inc)
            self._wake_pullers()
        return held

    async def ack(self, message: Message) -> None:
        """Pipelined: the ack is sent at once and confirmed in the background (a lost ack means
        a redelivery, as with any at-least-once broker); stats and close wait for them."""
        held = self._take(message)
        inc = held.inc
        future = await self._t.acks.send(inc.reply, ACK, timeout=SETTLE_TIMEOUT)
        self._confirming.add(future)
        future.add_done_callback(self._confirmed)
        if inc.ack.num_delivered > 1:
            self._drop_state(inc)
        if self.confirm_acks:
            try:
                await asyncio.shield(future)
            except Exception as exc:
                raise translate(exc, "acknowledge a message") from exc

    def _confirmed(self, future: asyncio.Future[None]) -> None:
        self._confirming.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.warning(
                "an ack was not confirmed (the message will come again): %s", future.exception()
            )

    async def acks_applied(self) -> None:
        if self._confirming:
            await asyncio.gather(*list(self._confirming), return_exceptions=True)

    async def nack(self, message: Message, delay: float = 0.0, error: str | None = None) -> None:
        held = self._take(message)
        inc = held.inc
        verdict = on_nack(self.spec, held.count, delay)
        if verdict.action == "dead-letter":
            await self._dead_letter(inc, verdict.reason, verdict.deliveries, error)
            return
        if error is not None:
            a = inc.ack
            await self._t.state.put_msg_state(
                a.stream, a.consumer, a.stream_seq, {"skips": held.skips, "error": error}
            )
        await self._settle(inc.reply, nak_payload(verdict.delay))

    async def extend(self, message: Message, seconds: float) -> None:
        held = self._take(message, keep=True)
        seconds = max(seconds, 0.001)
        await self._settle(held.inc.reply, nak_payload(seconds))
        held.deadline = time.monotonic() + seconds

    async def reject(self, message: Message, reason: str = "rejected") -> None:
        held = self._take(message)
        # As on the built-in broker: the reason header says "rejected"; the consumer's own
        # words are the error text.
        verdict = on_reject(held.count)
        await self._dead_letter(held.inc, verdict.reason, verdict.deliveries, reason)

    async def _dead_letter(
        self, inc: Incoming, reason: str, deliveries: int, error: str | None
    ) -> None:
        a = inc.ack
        if error is None and a.num_delivered > 1:
            error = (await self._t.state.get_msg_state(a.stream, a.consumer, a.stream_seq)).get(
                "error"
            )
        await deadletter.move(self._t, self.topic, self.spec, inc, reason, deliveries, error)
        await self._finish(inc, ACK)

    async def _finish(self, inc: Incoming, payload: bytes) -> None:
        """Settle for good; a redelivered message may have state (error, delay) to drop."""
        await self._settle(inc.reply, payload)
        if inc.ack.num_delivered > 1:
            self._drop_state(inc)

    def _drop_state(self, inc: Incoming) -> None:
        a = inc.ack
        task = asyncio.create_task(self._t.state.drop_msg_state(a.stream, a.consumer, a.stream_seq))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(self, reply: str, payload: bytes) -> None:
        """Send an acknowledgement and wait for the server to confirm it (a few retries while
        a cluster fails over; acknowledgements are idempotent)."""
        for attempt in range(4):
            try:
                await self._nc.request(reply, payload, timeout=SETTLE_TIMEOUT)
                return
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError) as exc:
                if attempt == 3:
                    raise translate(exc, "acknowledge a message") from exc
                await asyncio.sleep(0.2 * (attempt + 1))
            except Exception as exc:
                raise translate(exc, "acknowledge a message") from exc

    # ---------------------------------------------------------------- closing
    async def _release(self, incs: list[Incoming]) -> None:
        """Give messages back to the group at once (fire and forget, then flush)."""
        for inc in incs:
            self.leases.release(inc)
        with contextlib.suppress(Exception):
            for inc in incs:
                await self._nc.publish(inc.reply, NAK)
            await self._nc.flush(timeout=2)

    async def _stop_pullers(self) -> bool:
        """Stop every puller; True when all their pull requests had ended."""
        pullers = list(self._pullers.values())
        drained = await asyncio.gather(*(p.stop() for p in pullers))
        self._pullers = {}
        return all(drained)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._arrived.set()
        if self.membership is not None:
            await self.membership.stop()  # first: no rebalance may start pullers any more
        drained = await self._stop_pullers()
        incs = list(self._buffer) + [h.inc for h in self._held.values()]
        self._buffer.clear()
        self._held.clear()
        await self.leases.close()
        if not self._nc.is_closed:
            await self._release(incs)
        await self.acks_applied()
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task
        if not self._nc.is_closed:
            await self._left(drained)
        self._t.forget(self)

    async def _left(self, drained: bool) -> None:
        """Everything was given back on close (subclasses: say so where others wait for it)."""

    async def _start(self) -> None:
        """Start consuming (subclasses)."""
        raise NotImplementedError

    async def start(self) -> None:
        with translated(f"join group {self.spec.name!r} of topic {self.spec.topic!r}"):
            await self._start()
