"""Client-side lease management: which delivered messages to extend, and when.

A lease starts when the broker hands a message to a member, not when the application takes it.
A message waiting in the client's prefetch buffer would burn its lease (and, when it expires,
a delivery) while the application works through the messages before it. As the Google Cloud
Pub/Sub clients do for messages held in flow control, every transport keeps the leases of what
it holds alive here, in one place:

- a message is *tracked* from the moment it arrives (``track``) until it is settled
  (``release``); its lease is assumed to end ``lease`` seconds after arrival (the broker
  started it a little earlier, and extends are re-timed from when they are *sent*, so the
  estimate errs on the early side);
- one timer per subscription fires when the earliest lease has a third left, and every lease
  within that margin is extended by a whole lease in one batch (one EXTEND frame on
  ``tidings://``, in-progress acks on JetStream, direct calls on ``memory://``);
- a message handed to the application (``handed``) after waiting a third of its lease or more
  is extended in the same loop turn, so the application starts with (almost) a whole lease;
- buffered messages are extended only while the application makes progress (it took or
  settled a message within the last lease): a stuck consumer lets its buffer expire and go to
  other members; messages the application holds are extended until settled;
- nothing is extended past ``max_extension`` seconds after arrival (0 turns extension off);
- a lease the broker refused to extend, or whose estimated end passed without a successful
  extension (connection lost), is *lost*: ``alive`` says so, the transport drops such a message
  from its buffer instead of handing it out, and the broker redelivers it.

The renewer knows nothing about engines: it calls the transport's ``extend(items)`` coroutine
with the items due, which returns the items the broker refused (raises if the batch failed).
Items are the transport's own objects (a :class:`~tidings.model.Message` or an engine record),
compared by identity.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Generic, TypeVar

log = logging.getLogger("tidings.transports")

T = TypeVar("T", bound=Hashable)

DEFAULT_MAX_LEASE_EXTENSION = 3600.0  # seconds, as Google Cloud Pub/Sub's max_lease_duration
EXTEND_WHEN_LEFT = 1 / 3  # extend once this fraction of the lease is left
Extender = Callable[[list[T]], Awaitable[Iterable[T]]]


class _Lease:
    __slots__ = ("arrived", "deadline", "held", "refused")

    def __init__(self, arrived: float, deadline: float) -> None:
        self.arrived = arrived
        self.deadline = deadline  # time.monotonic() when the lease is assumed to run out
        self.held = False  # handed to the application (else: waiting in the buffer)
        self.refused = False  # the broker said the lease is gone


class LeaseRenewer(Generic[T]):
    """The leases of one subscription's un-settled messages, kept alive in batches."""

    def __init__(
        self,
        lease: float,
        extend: Extender[T],
        *,
        max_extension: float = DEFAULT_MAX_LEASE_EXTENSION,
    ) -> None:
        self.lease = lease
        self.max_extension = max_extension
        self.extensions = 0  # leases extended (for tests and stats)
        self._extend = extend
        self._margin = lease * EXTEND_WHEN_LEFT
        self._fresh = lease - self._margin  # handed out with less left: extend at once
        self._kept: OrderedDict[T, _Lease] = OrderedDict()  # earliest deadline first
        self._extending: dict[T, _Lease] = {}  # in an extend batch right now
        self._unkept: dict[T, _Lease] = {}  # no longer extended: alive until the deadline
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._handed: list[T] = []  # handed out after a long wait: extend this loop turn
        self._handed_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._progress = time.monotonic()  # when the application last took or settled one
        self._activity = 0  # takes and settles so far: a counter is cheaper than a clock
        self._seen_activity = 0
        self._closed = False

    @property
    def enabled(self) -> bool:
        return self.max_extension > 0 and self.lease > 0

    def __len__(self) -> int:
        return len(self._kept) + len(self._extending) + len(self._unkept)

    def _entry(self, item: T) -> _Lease | None:
        return self._kept.get(item) or self._extending.get(item) or self._unkept.get(item)

    # -- what the transport reports --------------------------------------------------------

    def track(self, item: T, arrived: float | None = None) -> None:
        """``item`` was delivered (at ``arrived``, monotonic; default now)."""
        if not self.enabled or self._closed:
            return
        now = time.monotonic() if arrived is None else arrived
        self._kept[item] = _Lease(now, now + self.lease)
        if self._timer is None:
            self._arm()

    def take(self, item: T) -> bool:
        """The application is about to get ``item``: False if its lease is gone (the caller
        drops it, and releases it), else as :meth:`handed`."""
        entry = self._kept.get(item)
        if entry is None:
            if self._entry(item) is None:
                self._activity += 1
                return True  # not tracked (extension off)
            if not self.alive(item):
                return False
            self.handed(item)
            return True
        now = time.monotonic()
        if entry.deadline <= now:
            return False
        self._activity += 1
        entry.held = True
        if entry.deadline - now < self._fresh and self._extendable(entry, now):
            self._extend_soon(item)
        return True

    def handed(self, item: T) -> None:
        """The application took ``item``: from now on it is extended until settled, and at once
        if it waited a third of its lease or more."""
        self._activity += 1
        now = time.monotonic()
        entry = self._kept.get(item)
        if entry is None:
            entry = self._extending.get(item)
            if entry is not None:
                entry.held = True
            return
        entry.held = True
        if entry.deadline - now < self._fresh and self._extendable(entry, now):
            self._extend_soon(item)

    def _extend_soon(self, item: T) -> None:
        self._handed.append(item)
        if not self._handed_scheduled:
            self._handed_scheduled = True
            asyncio.get_running_loop().call_soon(self._extend_handed)

    def release(self, item: T) -> None:
        """``item`` was settled (or given back): stop keeping its lease."""
        self._activity += 1
        if self._kept.pop(item, None) is None and self._extending.pop(item, None) is None:
            self._unkept.pop(item, None)

    def alive(self, item: T) -> bool:
        """False when ``item``'s lease is known or estimated to be gone."""
        entry = self._entry(item)
        if entry is None:
            return True  # not tracked (extension off): the transport's own check applies
        return not entry.refused and entry.deadline > time.monotonic()

    def deadline(self, item: T) -> float | None:
        entry = self._entry(item)
        return None if entry is None else entry.deadline

    def clear(self) -> None:
        """Forget every lease (the connection was lost or the group reset)."""
        self._kept.clear()
        self._extending.clear()
        self._unkept.clear()
        self._handed.clear()

    async def close(self) -> None:
        self._closed = True
        self.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- timing ------------------------------------------------------------------------------

    def _extendable(self, entry: _Lease, now: float) -> bool:
        if entry.refused or now - entry.arrived >= self.max_extension:
            return False
        if self._activity != self._seen_activity:
            self._seen_activity = self._activity
            self._progress = now
        return entry.held or now - self._progress < self.lease

    def _arm(self) -> None:
        if self._closed or not self._kept:
            return
        first = next(iter(self._kept.values()))
        at = first.deadline - self._margin
        if self._timer is not None:
            if self._timer_at <= at:
                return
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer_at = at
        self._timer = loop.call_later(max(0.0, at - time.monotonic()), self._tick)

    def _tick(self) -> None:
        self._timer = None
        now = time.monotonic()
        due: list[T] = []
        kept = self._kept
        while kept:
            item, entry = next(iter(kept.items()))
            if entry.deadline - self._margin > now:
                break
            del kept[item]
            if entry.deadline > now and self._extendable(entry, now):
                due.append(item)
                self._extending[item] = entry
            else:
                self._unkept[item] = entry  # the broker redelivers it once the lease ends
        if due:
            self._send(due, now)
        self._arm()

    def _extend_handed(self) -> None:
        self._handed_scheduled = False
        items, self._handed = self._handed, []
        due = []
        for item in items:
            entry = self._kept.pop(item, None)
            if entry is not None:
                self._extending[item] = entry
                due.append(item)
        if due:
            self._send(due, time.monotonic())

    def _send(self, items: list[T], sent: float) -> None:
        task = asyncio.get_running_loop().create_task(self._run(items, sent))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, items: list[T], sent: float) -> None:
        try:
            refused = set(await self._extend(items))
            failed = False
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("extending %d leases failed: %s", len(items), exc)
            refused, failed = set(), True
        now = time.monotonic()
        for item in items:
            entry = self._extending.pop(item, None)
            if entry is None or self._closed:
                continue  # settled (or forgotten) meanwhile
            if item in refused:
                entry.refused = True
                self._unkept[item] = entry
            elif failed:
                if entry.deadline > now:
                    self._kept[item] = entry
                    self._kept.move_to_end(item, last=False)  # again on the next tick
                else:
                    self._unkept[item] = entry
            else:
                entry.deadline = sent + self.lease
                self.extensions += 1
                self._kept[item] = entry
        if failed and self._kept:
            # retry soon, but not in a tight loop while the broker is away
            first = next(iter(self._kept.values()))
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = now + min(self._margin / 4, 1.0)
            delay = min(self._margin / 4, 1.0, max(0.0, first.deadline - now))
            self._timer = asyncio.get_running_loop().call_later(delay, self._tick)
        else:
            self._arm()
