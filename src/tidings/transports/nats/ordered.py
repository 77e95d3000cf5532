"""Ordered groups on nats://: partitions assigned exclusively to live members.

Each partition has its own durable consumer whose ``max_ack_pending`` is the group's in-flight
window, so JetStream delivers a partition's messages in order and resumes after the last
acknowledged one whoever pulls next. :class:`.membership.Membership` decides who pulls: when a
member joins, leaves or stops heart-beating, the assignment is recomputed; a member stops
pulling the partitions it lost and gives back the ones it had buffered but not handed out, and
starts pulling the partitions it gained. A dead member's in-flight messages come back when
their lease expires, before any later message of the partition (the window is full until then).
"""

from __future__ import annotations

import asyncio

from .membership import Membership, assign
from .naming import consumer_name, stream_name
from .subscription import NatsSubscription


class OrderedSubscription(NatsSubscription):
    @property
    def partitions(self) -> list[int]:
        """The partitions this member owns now."""
        return sorted(p for p in self._pullers if p is not None)

    async def _start(self) -> None:
        spec = self.spec
        self._lock = asyncio.Lock()
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
            for p in sorted(owned - current):
                puller = self._new_puller(
                    stream_name(self.spec.topic),
                    consumer_name(self.spec.name, p),
                    self.spec.in_flight_per_partition,
                )
                self._pullers[p] = puller
                await puller.start()

    async def _revoke(self, partitions: list[int]) -> None:
        # Stopping drains each puller: what is still on its way lands in the buffer first.
        await asyncio.gather(*(self._pullers[p].stop() for p in partitions))
        for p in partitions:
            del self._pullers[p]
        lost = set(partitions)
        mine = [inc for inc in self._buffer if inc.partition in lost]
        if mine:
            kept = [inc for inc in self._buffer if inc.partition not in lost]
            self._buffer.clear()
            self._buffer.extend(kept)
            await self._release(mine)
