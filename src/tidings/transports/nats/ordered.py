"""Ordered groups on nats://: partitions assigned exclusively to live members.

Each partition has its own durable consumer whose ``max_ack_pending`` is the group's in-flight
window, so JetStream delivers a partition's messages in order and resumes after the last
acknowledged one whoever pulls next. :class:`.membership.Membership` decides who pulls: when a
member joins, leaves or stops heart-beating, the assignment is recomputed; a member stops
pulling the partitions it lost and gives back the ones it had buffered but not handed out, and
starts pulling the partitions it gained. A dead member's in-flight messages come back when
their lease expires, before any later message of the partition (the window is full until then).

A partition is processed by at most one member at a time, also while ownership moves
(*fencing*): a member that gains a partition pulls it at once but holds its messages back until
nobody else holds any of the partition's messages, that is until JetStream's count of the
consumer's un-acknowledged messages is no more than what this member itself has received of it
(the previous owner's in-flight messages were settled, or their leases expired and they were
redelivered here), seen twice a poll apart. While other members are live, the fence also lasts
at least one pull-request lifetime (plus a margin): a previous owner's last pull requests stay
open on the server that long after it stopped pulling, and a message they catch goes back to
the group (and so to the new owner) only afterwards. The held-back messages are then released
in stream order. The previous owner meanwhile finishes (and settles) what its application
already holds, and hands out nothing more of the partition: what it had buffered and what its
last pull requests bring is given back to the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..rules.assignment import assign
from .codec import Incoming
from .membership import Membership
from .naming import consumer_name, stream_name
from .puller import PULL_EXPIRES
from .subscription import NatsSubscription

log = logging.getLogger("tidings.transports.nats")

FENCE_POLL = 0.1  # seconds between two looks at a gained partition's pending count
FENCE_MIN = PULL_EXPIRES + 0.5  # an old owner's open pull requests have ended by then


class OrderedSubscription(NatsSubscription):
    _fenced: dict[int, dict[int, Incoming]]  # partition -> stream seq -> held-back message
    _fences: dict[int, asyncio.Task[None]]

    def _accept(self, inc: Incoming) -> None:
        fenced = self._fenced.get(inc.partition)
        if fenced is None:
            super()._accept(inc)
        else:
            fenced[inc.ack.stream_seq] = inc  # a redelivery replaces its older copy

    def _withheld(self) -> int:
        # Held-back messages take no credit: the previous owner's messages can reach this
        # member only through credit, and the fence waits for them (with the credit spent on
        # held-back messages, a fence could wait forever). Their number is bounded anyway by
        # each partition's in-flight window (JetStream's max_ack_pending).
        return 0

    def _mine(self, partition: int) -> int:
        """How many of ``partition``'s messages this member holds (each stream seq once)."""
        seqs = set(self._fenced.get(partition, ()))
        seqs.update(s for s, h in self._held.items() if h.inc.partition == partition)
        seqs.update(i.ack.stream_seq for i in self._buffer if i.partition == partition)
        return len(seqs)

    async def _fence(self, partition: int, minimum: float) -> None:
        """Release ``partition``'s messages once no other member holds one of them (and not
        before ``minimum`` seconds)."""
        stream = stream_name(self.spec.topic)
        consumer = consumer_name(self.spec.name, partition)
        clear = 0
        loop = asyncio.get_running_loop()
        earliest = loop.time() + minimum
        while not self._closed and partition in self._fenced:
            try:
                info = await self._t.js.consumer_info(stream, consumer)
                pending = info.num_ack_pending or 0
                clear = clear + 1 if pending <= self._mine(partition) else 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the server may be failing over: look again
                log.debug("fence check of %s failed: %s", consumer, exc)
                clear = 0
            if clear >= 2 and loop.time() >= earliest:
                break
            await asyncio.sleep(FENCE_POLL)
        held_back = self._fenced.pop(partition, None)
        self._fences.pop(partition, None)
        if held_back:
            self._buffer.extend(held_back[seq] for seq in sorted(held_back))
            self._arrived.set()

    @property
    def partitions(self) -> list[int]:
        """The partitions this member owns now."""
        return sorted(p for p in self._pullers if p is not None)

    async def _start(self) -> None:
        spec = self.spec
        self._lock = asyncio.Lock()
        self._fenced = {}
        self._fences = {}
        self.membership = Membership(
            self._nc,
            self._t.state,
            spec.topic,
            spec.name,
            spec.session_timeout,
            on_change=self._rebalance,
            on_reset=self.flush,
        )
        await self.membership.start()

    async def _rebalance(self, live: list[str]) -> None:
        assert self.membership is not None
        async with self._lock:
            if self._closed:
                return
            owned = assign(self.topic.partitions, live, self.membership.member)
            current = {p for p in self._pullers if p is not None}
            lost = sorted(current - owned)
            if lost:
                await self._revoke(lost)
            # Alone, no other member can still be pulling what this one gained.
            minimum = FENCE_MIN if len(live) > 1 else 0.0
            for p in sorted(owned - current):
                self._fenced[p] = {}
                self._fences[p] = asyncio.create_task(
                    self._fence(p, minimum), name=f"tidings-fence-{p}"
                )
                puller = self._new_puller(
                    stream_name(self.spec.topic),
                    consumer_name(self.spec.name, p),
                    self.spec.in_flight_per_partition,
                )
                self._pullers[p] = puller
                await puller.start()

    async def _revoke(self, partitions: list[int]) -> None:
        # From now on nothing of these partitions is handed out here (the new owner may start
        # any moment): what is buffered, and what the stopping pullers still bring in, is held
        # back and then given back to the group. What the application holds it finishes.
        fences = [f for f in (self._fences.pop(p, None) for p in partitions) if f is not None]
        for fence in fences:
            fence.cancel()
        lost = set(partitions)
        for p in partitions:
            self._fenced.setdefault(p, {})
        kept = []
        for inc in self._buffer:
            if inc.partition in lost:
                self._fenced[inc.partition][inc.ack.stream_seq] = inc
            else:
                kept.append(inc)
        if len(kept) != len(self._buffer):
            self._buffer.clear()
            self._buffer.extend(kept)
        for fence in fences:
            with contextlib.suppress(asyncio.CancelledError):
                await fence
        # Stopping drains each puller: what is still on its way lands in the held-back set.
        await asyncio.gather(*(self._pullers[p].stop() for p in partitions))
        for p in partitions:
            del self._pullers[p]
        give_back = [inc for p in partitions for inc in self._fenced.pop(p, {}).values()]
        if give_back:
            await self._release(give_back)

    async def close(self) -> None:
        for fence in list(getattr(self, "_fences", {}).values()):
            fence.cancel()
        fenced = getattr(self, "_fenced", {})
        for held_back in fenced.values():
            self._buffer.extend(held_back.values())  # given back with the buffer
        fenced.clear()
        await super().close()
