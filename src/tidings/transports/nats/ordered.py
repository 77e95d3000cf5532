"""Ordered groups on nats://: partitions assigned exclusively to live members.

Each partition has its own durable consumer whose ``max_ack_pending`` is the group's in-flight
window, so JetStream delivers a partition's messages in order and resumes after the last
acknowledged one whoever pulls next. :class:`.membership.Membership` says who is live: when a
member joins, leaves or stops heart-beating, the assignment is recomputed; a member gives up
the partitions it lost and takes over the partitions it gained.

A partition is processed by at most one member at a time, also while ownership moves and
whatever the timing (*fencing*). Who processes a partition is not the assignment but its
*holder record* in the state stream (:mod:`.state`), written with compare-and-set, so two
members whose views of the group differ for a moment can never both hold it:

- A member that gains a partition does not even pull it (a pull request takes messages away
  from whoever holds the partition) until it has taken the partition over
  (:func:`~tidings.transports.rules.assignment.may_take`): nobody holds it, its previous
  holder released it, or that holder's latest heartbeat is a session timeout old (a member
  stops by itself before that, see :mod:`.membership`). It then pulls, but holds the messages
  back until nobody else holds any of the partition's messages: JetStream's count of the
  consumer's un-acknowledged messages is no more than what this member held throughout the
  look (a message lost in a previous holder's ended subscription comes back when its lease
  expires, and is waited for). When the previous holder could not say that all its pull
  requests had ended (it died, or its requests outlived its stop), the fence also lasts one
  pull-request lifetime (plus a margin) after the take-over: a request still open on the
  server may catch one more message for the old holder, which then comes back here. The
  held-back messages are then released in stream order.
- A member that loses a partition hands out nothing more of it from that moment: what it
  had buffered and what its last pull requests bring is given back to the group. It
  finishes (and settles) what its application already holds, and only once none of the
  partition's messages is left with it does it write "released" (a member that closes
  releases everything once it gave back what it had). A member that may be presumed dead
  (its own heartbeat too old) fetches and hands out nothing, and gives everything up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from ...model import Message
from ..rules.assignment import assign, may_take
from .codec import Incoming
from .membership import Membership
from .naming import consumer_name, stream_name
from .puller import PULL_EXPIRES
from .subscription import NatsSubscription

log = logging.getLogger("tidings.transports.nats")

FENCE_POLL = 0.1  # seconds between two looks at a gained partition (holder, pending count)
FENCE_MIN = PULL_EXPIRES + 0.5  # an old holder's open pull requests have ended by then


class OrderedSubscription(NatsSubscription):
    _fenced: dict[int, dict[int, Incoming]]  # partition -> stream seq -> held-back message
    _fences: dict[int, asyncio.Task[None]]
    _holds: dict[int, int]  # partition -> version of this member's holder record
    _giving_up: dict[int, asyncio.Task[None]]  # partition -> "released" once nothing is left
    _undrained: set[int]  # partitions whose last pull requests may still be open
    _owned: set[int]  # the partitions assigned to this member (held, or being taken over)

    def _accept(self, inc: Incoming) -> None:
        fenced = self._fenced.get(inc.partition)
        if fenced is not None:
            fenced[inc.ack.stream_seq] = inc  # a redelivery replaces its older copy
        elif inc.partition in self._pullers:
            super()._accept(inc)
        else:  # a late arrival of a partition given up: it goes back to the group
            self._spawn(self._release([inc]))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _withheld(self) -> int:
        # Held-back messages take no credit: the previous owner's messages can reach this
        # member only through credit, and the fence waits for them (with the credit spent on
        # held-back messages, a fence could wait forever). Their number is bounded anyway by
        # each partition's in-flight window (JetStream's max_ack_pending).
        return 0

    def _stale(self) -> bool:
        m = self.membership
        if m is not None and m.stale():
            m.poke()  # its loop gives every partition up
            return True
        return False

    def free(self) -> int:
        if self._stale():
            return 0  # presumed dead soon: no more pull requests
        return super().free()

    def _may_hand_out(self, partition: int) -> bool:
        return (
            partition in self._owned
            and partition in self._pullers
            and partition not in self._fenced
            and not self._stale()
        )

    async def _admit(self, inc: Incoming) -> Message | None:
        if not self._may_hand_out(inc.partition):
            await self._release([inc])
            return None
        message = await super()._admit(inc)
        if message is not None and not self._may_hand_out(inc.partition):
            # given up while admitting it: it goes back with the rest
            self._held.pop(inc.ack.stream_seq, None)
            await self._release([inc])
            return None
        return message

    def _mine(self, partition: int) -> set[int]:
        """The stream seqs of ``partition``'s messages this member holds."""
        seqs = set(self._fenced.get(partition, ()))
        seqs.update(s for s, h in self._held.items() if h.inc.partition == partition)
        seqs.update(i.ack.stream_seq for i in self._buffer if i.partition == partition)
        return seqs

    def _holds_messages_of(self, partition: int) -> bool:
        if self._held:
            self._sweep()  # a message whose lease ran out is no longer held here
        return any(h.inc.partition == partition for h in self._held.values())

    async def _take_over(self, partition: int) -> float:
        """Become ``partition``'s holder (compare-and-set on its record); how long the fence
        must last at least from now (an earlier holder's pull requests may still be open)."""
        assert self.membership is not None
        state, spec, me = self._t.state, self.spec, self.membership.member
        while True:
            try:
                holder = await state.holder(spec.topic, spec.name, partition)
                taken = False
                if holder is None or holder.released or holder.member == me:
                    taken = True
                elif may_take(holder, me, self.membership.beats, spec.session_timeout):
                    # Confirmed on heartbeats read after the record: a holder that wrote it
                    # after a fresh heartbeat is seen alive.
                    beats = await state.members(spec.topic, spec.name)
                    taken = may_take(holder, me, beats, spec.session_timeout)
                if taken and not self.membership.stale():
                    # Written even when the record is this member's own: a member that
                    # judged this one dead on an older version must lose its write.
                    version = await state.hold(
                        spec.topic, spec.name, partition, me, holder.version if holder else 0
                    )
                    if version is not None:
                        self._holds[partition] = version
                        if holder is None:
                            return 0.0
                        if holder.member == me:
                            return FENCE_MIN if partition in self._undrained else 0.0
                        return 0.0 if holder.released and holder.drained else FENCE_MIN
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the server may be failing over: look again
                log.debug("taking over partition %d of %s failed: %s", partition, spec.name, exc)
            await asyncio.sleep(FENCE_POLL)

    async def _fence(self, partition: int) -> None:
        """Release ``partition``'s messages once this member took it over and no other member
        holds one of them."""
        stream = stream_name(self.spec.topic)
        consumer = consumer_name(self.spec.name, partition)
        loop = asyncio.get_running_loop()
        # Pulled only once taken over: a member's pull requests take messages away from the
        # holder, whatever it does with them.
        earliest = loop.time() + await self._take_over(partition)
        self._undrained.discard(partition)
        puller = self._new_puller(stream, consumer, self.spec.in_flight_per_partition)
        self._pullers[partition] = puller
        await puller.start()
        clear = 0
        while not self._closed and partition in self._fenced:
            try:
                before = self._mine(partition)
                info = await self._t.js.consumer_info(stream, consumer)
                pending = info.num_ack_pending or 0
                # what was held here throughout the look counts as ours: what arrived during
                # it may have been counted by the server or not
                clear = clear + 1 if pending <= len(before & self._mine(partition)) else 0
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

    async def _give_up(self, partition: int, drained: bool) -> None:
        """Write "released" once none of ``partition``'s messages is left here."""
        assert self.membership is not None
        spec, me = self.spec, self.membership.member
        while partition in self._holds:
            try:
                if not self._holds_messages_of(partition):
                    await self._t.state.hold(
                        spec.topic,
                        spec.name,
                        partition,
                        me,
                        self._holds[partition],
                        release=True,
                        drained=drained,
                    )  # None: another member took it over (it found this one dead)
                    self._holds.pop(partition, None)
                    break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the server may be failing over: try again
                log.debug("releasing partition %d of %s failed: %s", partition, spec.name, exc)
            await asyncio.sleep(FENCE_POLL)
        self._giving_up.pop(partition, None)

    @property
    def partitions(self) -> list[int]:
        """The partitions this member owns now (it may still be taking them over)."""
        return sorted(self._owned)

    async def _start(self) -> None:
        spec = self.spec
        self._lock = asyncio.Lock()
        self._fenced = {}
        self._fences = {}
        self._holds = {}
        self._giving_up = {}
        self._undrained = set()
        self._owned = set()
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
            current = self._owned
            self._owned = owned
            lost = sorted(current - owned)
            if lost:
                await self._revoke(lost)
            for p in sorted(owned - current):
                giving_up = self._giving_up.pop(p, None)
                if giving_up is not None:  # regained before it was released: keep holding
                    giving_up.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await giving_up
                self._fenced[p] = {}
                self._fences[p] = asyncio.create_task(self._fence(p), name=f"tidings-fence-{p}")

    async def _revoke(self, partitions: list[int]) -> None:
        # From now on nothing of these partitions is handed out here: what is buffered, and
        # what the stopping pullers still bring in, is held back and then given back to the
        # group. What the application holds it finishes; "released" follows once it has.
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
        pullers = [self._pullers.pop(p, None) for p in partitions]
        drained = await asyncio.gather(*(pl.stop() for pl in pullers if pl is not None))
        it = iter(drained)
        drained = [True if pl is None else next(it) for pl in pullers]
        give_back = [inc for p in partitions for inc in self._fenced.pop(p, {}).values()]
        if give_back:
            await self._release(give_back)
        for p, clean in zip(partitions, drained, strict=True):
            if not clean:
                self._undrained.add(p)
            if p in self._holds:
                self._giving_up[p] = asyncio.create_task(
                    self._give_up(p, clean), name=f"tidings-release-{p}"
                )

    async def close(self) -> None:
        tasks = [*getattr(self, "_fences", {}).values(), *getattr(self, "_giving_up", {}).values()]
        for task in tasks:
            task.cancel()
        fenced = getattr(self, "_fenced", {})
        for held_back in fenced.values():
            self._buffer.extend(held_back.values())  # given back with the buffer
        fenced.clear()
        await super().close()

    async def _left(self, drained: bool) -> None:
        # Everything was given back: release what this member held, so that the others need
        # not wait for its heartbeat to age out.
        assert self.membership is not None
        spec, me = self.spec, self.membership.member
        undrained: set[int] = getattr(self, "_undrained", set())

        async def release(partition: int, version: int) -> None:
            with contextlib.suppress(Exception):
                clean = drained and partition not in undrained
                await self._t.state.hold(
                    spec.topic, spec.name, partition, me, version, release=True, drained=clean
                )

        holds = getattr(self, "_holds", {})
        await asyncio.gather(*(release(p, v) for p, v in holds.items()))
        holds.clear()
