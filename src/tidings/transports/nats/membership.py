"""Group membership over JetStream: heartbeats, the live member list and partition assignment.

Every member publishes a heartbeat to the state stream (see :mod:`.state`) every third of the
group's ``session_timeout``. A member is live while its latest heartbeat is younger than the
session timeout, judged on the server's timestamps (the member's own fresh heartbeat is "now"),
so client clocks never matter. Joining and leaving members also publish a core-NATS notice that
makes everyone re-read the list at once; a member that stopped heart-beating is noticed within
the session timeout plus one interval. A member whose last successful heartbeat was sent
nearly a session timeout ago (:func:`~tidings.transports.rules.assignment.self_fenced`: it
could not heartbeat, or its process was starved) considers itself gone and gives up its
partitions before anyone may take them over (self-fencing); :meth:`Membership.stale` lets the
subscription check that synchronously before it fetches or hands out anything. The same notice
subject carries "reset": drop what was pulled from the group before a reset.

Who is live and who owns which partition are the shared rules of
:mod:`tidings.transports.rules.assignment`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from ..rules.assignment import Heartbeat, live_members, self_fenced
from .codec import new_id
from .naming import notify_subject
from .state import StateStore

log = logging.getLogger("tidings.transports.nats")

RESET = b"reset"  # notice: the group was reset, drop what was pulled before
OnChange = Callable[[list[str]], Awaitable[None]]


class Membership:
    def __init__(
        self,
        nc: Client,
        state: StateStore,
        topic: str,
        group: str,
        session_timeout: float,
        on_change: OnChange | None = None,
        on_reset: Callable[[], None] | None = None,
    ) -> None:
        self.member = new_id()
        self.live: list[str] = []
        self.beats: list[Heartbeat] = []  # the entries read at the last refresh
        self._nc = nc
        self._state = state
        self._topic = topic
        self._group = group
        self._timeout = session_timeout
        self._interval = min(max(session_timeout / 3, 0.1), 5.0)
        self._on_change = on_change
        self._on_reset = on_reset
        self._poke = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sub: Subscription | None = None
        self._stopped = False
        self._last_beat = 0.0  # when the last successful heartbeat was sent (monotonic)

    async def start(self) -> None:
        await self._beat()
        self._sub = await self._nc.subscribe(
            notify_subject(self._topic, self._group), cb=self._notified
        )
        if self._on_change is not None:
            await self._nc.publish(notify_subject(self._topic, self._group), b"join")
            await self._refresh()
        self._task = asyncio.create_task(self._run(), name=f"tidings-members-{self._group}")

    async def stop(self) -> None:
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self._state.heartbeat(self._topic, self._group, self.member, left=True)
            await self._nc.publish(notify_subject(self._topic, self._group), b"leave")
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    def abandon(self) -> None:
        """Stop heart-beating without saying goodbye (tests: a member that died)."""
        if self._task is not None:
            self._task.cancel()

    async def _notified(self, msg: Msg) -> None:
        if msg.data == RESET:
            if self._on_reset is not None:
                self._on_reset()
        elif self._on_change is not None:
            self._poke.set()

    def stale(self) -> bool:
        """True when this member must stop processing: the others may find it dead soon."""
        return self_fenced(time.monotonic() - self._last_beat, self._timeout)

    def poke(self) -> None:
        """Have the membership loop look again now."""
        self._poke.set()

    async def _beat(self) -> None:
        sent = time.monotonic()  # the engine stores it later: measuring from here errs early
        await self._state.heartbeat(self._topic, self._group, self.member)
        self._last_beat = sent

    async def _run(self) -> None:
        while not self._stopped:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._poke.wait()
            self._poke.clear()
            try:
                if self._on_change is not None and self.stale():
                    # Presumed dead by the others soon (heartbeats failed, or this process was
                    # starved): let go of everything; what is regained is taken over anew.
                    await self._set_live([])
                if time.monotonic() - self._last_beat >= self._interval * 0.9:
                    await self._beat()
                if self._on_change is not None:
                    await self._refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep going: the server may be failing over
                log.warning("group %s/%s heartbeat failed: %s", self._topic, self._group, exc)

    async def _refresh(self) -> None:
        entries = await self._state.members(self._topic, self._group)
        self.beats = entries
        if self.stale():  # the heartbeat before this read was not in time: keep out
            await self._set_live([])
            return
        await self._set_live(live_members(entries, self.member, self._timeout))

    async def _set_live(self, live: list[str]) -> None:
        if live != self.live:
            self.live = live
            if self._on_change is not None:
                await self._on_change(live)
