"""An ordered group's member on amqp://: partitions assigned by the shared rule, fenced by
RabbitMQ's single-active-consumer.

Each partition of an ordered group is a quorum queue with ``x-single-active-consumer``: however
many members consume it, RabbitMQ delivers to one at a time, in order, and hands the queue to
the next consumer only once the active one cancelled (or its connection died).

Which member consumes which partition is :func:`..rules.assignment.assign` over the live
members. A member is live while its exclusive queue ``tidings.m/<topic>/<group>/<member>``
exists (:mod:`.naming`): RabbitMQ deletes it with the member's connection, so a crashed member
drops out at once, without heartbeats. Every member re-reads the list every
``REBALANCE_EVERY`` seconds and then:

- consumes the partitions it gained (RabbitMQ keeps it inactive on a partition while the old
  owner is still active there: that is the fence);
- hands over the partitions it lost: what arrives from them and what waits in its buffer goes
  back to the queue (in order: a quorum queue redelivers returned messages first), and once
  the application settled what it holds of a partition, the consumer is cancelled and RabbitMQ
  activates the new owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque

import aio_pika

from ..rules.assignment import assign
from .codec import Incoming
from .naming import member_prefix
from .subscription import AmqpSubscription

log = logging.getLogger("tidings.transports.amqp")

REBALANCE_EVERY = 0.5  # seconds between reads of the membership


class OrderedSubscription(AmqpSubscription):
    """Consumes each partition it owns on a channel of its own: closing that channel is the
    handover (RabbitMQ returns what it held and activates the next owner in one step)."""

    member: str = ""
    _rebalancer: asyncio.Task[None] | None = None

    async def _joined(self) -> None:
        self.member = secrets.token_hex(6)
        self._owned: set[int] = set()
        self._releasing: set[int] = set()
        self._channels: dict[int, aio_pika.abc.AbstractChannel] = {}
        self._withheld: dict[int, int] = {}  # partition -> messages kept back for the handover
        self._member_queue = member_prefix(self.spec.topic, self.spec.name) + self.member
        await self._rejoined()
        self._rebalancer = asyncio.create_task(
            self._loop(), name=f"tidings-amqp-rebalance-{self.member}"
        )

    async def _rejoined(self) -> None:
        """Register (again, after a reconnect: the member queue went with the connection)."""
        assert self._channel is not None
        await self._channel.declare_queue(self._member_queue, exclusive=True, auto_delete=True)
        self._owned = assign(self.topic.partitions, await self._live(), self.member)

    def _lost_channels(self) -> None:
        # RabbitMQ returned what every partition channel held and deactivated this member on
        # each: nothing is being handed over any more
        self._channels.clear()
        self._releasing.clear()
        self._withheld.clear()
        self._owned = set()

    def _wanted(self) -> set[int]:
        return self._owned - self._releasing

    async def _on_message(self, raw: aio_pika.abc.AbstractIncomingMessage) -> None:
        inc = Incoming(raw, time.monotonic())
        if inc.partition in self._releasing:
            # kept un-acknowledged until the handover returns it with the channel, in order
            self.acks.arrived(inc)  # outstanding: no multiple ack may cover it
            self._withheld[inc.partition] = self._withheld.get(inc.partition, 0) + 1
            return
        await self._take_in(inc)

    async def _consume(self) -> None:
        self._paused = False
        per_consumer = min(self.prefetch, self.spec.in_flight_per_partition)
        for p in sorted(self._wanted() - set(self._tags)):
            channel = self._channels.get(p)
            if channel is None or channel.is_closed:
                channel = await self._t.connection.channel()
                await channel.set_qos(prefetch_count=per_consumer)
                self._channels[p] = channel
            queue = await channel.get_queue(self._queue_names[p], ensure=False)
            self._queues[p] = queue
            self._tags[p] = await queue.consume(self._on_message, no_ack=False)

    async def _live(self) -> list[str]:
        prefix = member_prefix(self.spec.topic, self.spec.name)
        rows = await self._t.management.queues(prefix)
        live = {str(r["name"])[len(prefix) :] for r in rows}
        live.add(self.member)
        return sorted(live)

    async def _loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(REBALANCE_EVERY)
            if self._down:
                continue  # the transport reconnects, then _rejoined() assigns again
            try:
                await self._rebalance()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("amqp: rebalancing group %s failed: %s", self.spec.name, exc)

    async def _rebalance(self) -> None:
        want = assign(self.topic.partitions, await self._live(), self.member)
        self._releasing = (self._releasing | (self._owned - want)) - want
        self._owned = want | self._releasing
        if self._releasing:
            keep: deque[Incoming] = deque()
            for inc in self._buffer:  # not handed out yet: back with the channel
                if inc.partition in self._releasing:
                    self.leases.release(inc)
                else:
                    keep.append(inc)
            self._buffer = keep
        for p in list(self._releasing):
            if not any(h.inc.partition == p for h in self._held.values()):
                await self._hand_over(p)
        if not self._paused and not self._closed:
            await self._consume()

    async def _hand_over(self, p: int) -> None:
        """Nothing of ``p`` is held any more: close its channel (RabbitMQ returns what was
        kept back and activates the next owner)."""
        self._tags.pop(p, None)
        await self.acks.flush()  # what was settled must not come back to the next owner
        channel = self._channels.pop(p, None)
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(Exception):
                await channel.close()
        self._withheld.pop(p, None)
        self._releasing.discard(p)
        self._owned.discard(p)

    async def _leaving(self) -> None:
        if self._rebalancer is not None:
            self._rebalancer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._rebalancer
        for channel in self._channels.values():
            if not channel.is_closed:
                with contextlib.suppress(Exception):
                    await channel.close()
        self._channels.clear()
        if self._channel is not None and not self._channel.is_closed:
            # the connection may outlive this member (other subscriptions use it)
            with contextlib.suppress(Exception):
                await self._channel.queue_delete(self._member_queue)
