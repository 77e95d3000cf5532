"""Ordered groups on redis://: partitions assigned exclusively to live members by tidings.

Members write a heartbeat (server time) into the group's members hash every loop and read
the others'; who is live and who owns which partition are the shared rules of
:mod:`tidings.transports.rules.assignment` (``sorted(live)[p % len(live)]``, a member silent
for ``session_timeout`` is gone). A member reads only the partitions it owns, through the
``ORDERED_READ`` script (:mod:`.scripts`), which is also the fence of a handover: it hands
out nothing of a partition while another member holds one of its messages under a running
lease (the pending-entries list says who holds what), gives back the expired ones first (in
stream order, the delivery count going up), and reads new ones only while the partition's
in-flight window (``in_flight_per_partition``) has room. So a partition is processed by at
most one member at a time, also while two members briefly both believe they own it, and a
failed member's partition resumes after its last acknowledged message once its leases
expire. A member that loses a partition gives back what it had buffered of it at once and
finishes what its application holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from ..rules.assignment import Heartbeat, assign, live_members
from .codec import Entry
from .errors import translate
from .subscription import RedisSubscription

log = logging.getLogger("tidings.transports.redis")

POLL = 0.1  # seconds between two looks at the owned partitions when nothing happens


class OrderedSubscription(RedisSubscription):
    owned: set[int]
    live: list[str]

    @property
    def partitions(self) -> list[int]:
        """The partitions this member owns now."""
        return sorted(self.owned)

    def _partitions_owned(self) -> list[int]:
        return sorted(self.owned)

    async def start(self) -> None:
        self.owned = set()
        self.live = []
        await self.prune()
        await self._refresh()
        self._task = asyncio.create_task(self._run(), name=f"tidings-redis-{self.spec.name}")

    async def _refresh(self) -> None:
        reply = await self._t.scripts.membership(
            keys=[self.keys.members(self.spec.name)], args=[self.member]
        )
        now, flat = int(reply[0]), reply[1:]
        beats = [
            Heartbeat(m.decode(), int(t) / 1000.0)
            for m, t in zip(flat[::2], flat[1::2], strict=True)
        ]
        self.live = live_members(beats, self.member, self.spec.session_timeout, now / 1000.0)
        owned = assign(self.topic.partitions, self.live, self.member)
        lost = self.owned - owned
        self.owned = owned
        if lost:
            # nothing more of these is handed out here: what is buffered goes back at once
            give_back = [e for e in self._buffer if e.partition in lost]
            if give_back:
                kept = [e for e in self._buffer if e.partition not in lost]
                self._buffer.clear()
                self._buffer.extend(kept)
                for e in give_back:
                    self.leases.release(e)
                await self._settle("release", give_back)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_refresh = 0.0
        window = self.spec.in_flight_per_partition
        last_beat = time.monotonic()
        while not self._closed:
            try:
                if loop.time() >= next_refresh:
                    await self._refresh()
                    last_beat = time.monotonic()
                    next_refresh = loop.time() + min(POLL * 2.5, self._beat_every)
                    if await self._lapse():
                        return  # stuck for good: closing (its partitions move)
                self._poke.clear()
                for p in sorted(self.owned):
                    free = self.free()
                    if free <= 0:
                        break
                    rows = await self._t.scripts.ordered_read(
                        keys=[
                            self.keys.stream(p),
                            self.keys.hold(self.spec.name, p),
                            self.keys.skips(self.spec.name, p),
                        ],
                        args=[self.spec.name, self.member, self._lease_ms, window, free],
                    )
                    arrived = time.monotonic()
                    for entry_id, flat, count, skips in rows or []:
                        fields = dict(zip(flat[::2], flat[1::2], strict=True))
                        self._sink(
                            Entry(p, entry_id.decode(), fields, int(count), int(skips), arrived)
                        )
                wait = max(0.001, min(POLL, next_refresh - loop.time()))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._poke.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("redis: %s; retrying", translate(exc, f"read group {self.spec.name!r}"))
                if time.monotonic() - last_beat > self.spec.session_timeout:
                    self.owned = set()  # presumed dead by the others: let go
                await asyncio.sleep(0.5)
