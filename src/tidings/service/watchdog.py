"""Watchdog: one timer per consumer for the lease extension and hard timeout of every handling.

All handlings of one handler share its lease and timeout, so the order they started in is the
order their half lease and their timeout come due. The watchdog keeps two start-ordered queues
(waiting for the half lease, waiting for the timeout) and one timer armed at the earliest due
time. At the half lease it starts a :class:`LeaseKeeper` extending the lease; at the timeout it
cancels the handling's task, and the handling raises TimeoutError, as ``asyncio.timeout`` would
(a cancellation from elsewhere stays a cancellation). A timer and a Timeout per handling (made,
cancelled, left in the loop's heap) were the largest cost of the framework's consume path.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..model import Message
from .leases import LeaseKeeper

# the message of the watchdog's own cancellation: middleware, which sees the CancelledError
# before the handling turns it into a Timeout, reports it as the timeout it is
TIMEOUT_CANCEL = "tidings: the handler ran past its timeout"


def is_timeout_cancel(exc: BaseException) -> bool:
    """The watchdog's cancellation of a handler past its timeout (not a shutdown's)."""
    return isinstance(exc, asyncio.CancelledError) and exc.args == (TIMEOUT_CANCEL,)


class Watch:
    """One handling under watch (from :meth:`Watchdog.start` to :meth:`Watchdog.end`)."""

    __slots__ = ("cancelling", "expired", "keeper", "message", "started", "task")

    def __init__(self, message: Message, task: asyncio.Task[Any], started: float) -> None:
        self.message = message
        self.task = task
        self.cancelling = task.cancelling()
        self.started = started
        self.expired = False  # the timeout passed and the watchdog cancelled the task
        self.keeper: LeaseKeeper | None = None  # extending the lease, from the half lease on


class Watchdog:
    """Watches the handlings of one handler: extends leases after ``lease / 2`` seconds and
    cancels handlings still running after ``timeout`` seconds (None: never)."""

    def __init__(self, lease: float, timeout: float | None) -> None:
        self.lease = lease
        self.timeout = timeout
        self._half = lease / 2
        # dicts keep insertion order: the first key is the handling that started first
        self._leases: dict[Watch, None] = {}
        self._timeouts: dict[Watch, None] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # get_running_loop() is a getpid()

    def start(self, message: Message, task: asyncio.Task[Any] | None = None) -> Watch:
        """Watch the handling of ``message`` that the current task (``task``, if the caller
        knows it: asking costs a call) runs from now on."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        if task is None:
            task = asyncio.current_task(loop)
            assert task is not None
        watch = Watch(message, task, loop.time())
        self._leases[watch] = None
        if self.timeout is not None:
            self._timeouts[watch] = None
        if self._timer is None:
            self._arm(loop)
        return watch

    def end(self, watch: Watch, exc: BaseException | None) -> bool:
        """Stop watching; True if the handling ended in the watchdog's own cancellation (the
        caller reports a timeout). Await ``watch.keeper.stop()`` after, if there is a keeper."""
        self._leases.pop(watch, None)
        self._timeouts.pop(watch, None)
        if not watch.expired:
            return False
        # as asyncio.Timeout: the cancellation is ours only if no other cancel request came
        return watch.task.uncancel() <= watch.cancelling and isinstance(exc, asyncio.CancelledError)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        """Set the timer to the earliest due time (none when nothing is watched)."""
        due = None
        if self._leases:
            due = next(iter(self._leases)).started + self._half
        if self._timeouts:
            assert self.timeout is not None
            at = next(iter(self._timeouts)).started + self.timeout
            due = at if due is None else min(due, at)
        self._timer = None if due is None else loop.call_at(due, self._fire)

    def _fire(self) -> None:
        loop = self._loop
        assert loop is not None
        now = loop.time()
        half, leases = self._half, self._leases
        while leases:
            watch = next(iter(leases))
            if watch.started + half > now:
                break
            del leases[watch]
            if not watch.message.settled:
                watch.keeper = LeaseKeeper(watch.message, self.lease)
                watch.keeper.start_extending()
        timeouts = self._timeouts
        while timeouts and self.timeout is not None:
            watch = next(iter(timeouts))
            if watch.started + self.timeout > now:
                break
            del timeouts[watch]
            if not watch.task.done():
                watch.expired = True
                watch.task.cancel(TIMEOUT_CANCEL)
        self._arm(loop)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
