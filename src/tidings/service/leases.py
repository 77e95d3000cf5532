"""Lease auto-extension: a long handler keeps its message's lease alive.

While a handler runs, :class:`LeaseKeeper` extends the lease by the full lease every half lease,
so a message is never redelivered to another member just because its handler is slow. (A
handler that runs past its hard timeout is cancelled instead; see the handler's ``timeout``.)

Until the first half lease has passed the keeper is only a timer; the task that extends is
started when it fires. Most handlings end long before, and a task per handled message (made,
cancelled, awaited) was the largest single cost of the framework's consume path. Handlers do
not even pay the timer: a consumer's :class:`~tidings.service.watchdog.Watchdog` times all its
handlings with one, and starts a keeper's extending only for those still running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..errors import Closed, LeaseLost
from ..model import Message

log = logging.getLogger("tidings.service")


class LeaseKeeper:
    """Extends ``message``'s lease by ``lease`` seconds every ``lease / 2`` seconds until
    stopped (use it as ``async with``)."""

    def __init__(self, message: Message, lease: float) -> None:
        self.message = message
        self.lease = lease
        self.extensions = 0
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._stopped = False

    def _due(self) -> None:
        self._timer = None
        if not self.message.settled:
            self.start_extending()

    def start_extending(self) -> None:
        """Extend now and every half lease from now on (the half lease has passed)."""
        self._task = asyncio.create_task(self._run(), name=f"tidings-lease-{self.message.id}")

    async def _run(self) -> None:
        interval = self.lease / 2
        # ``_stopped`` as well as the cancellation: a transport's call that swallows the
        # cancel (Python 3.11's asyncio.timeout does when its own deadline lands at the same
        # moment, and redis-py times its reads with it) returned normally, and this loop
        # extended on while stop() waited for it and the handling for stop(): a hang
        while not self.message.settled and not self._stopped:
            try:
                await self.message.extend(self.lease)
                self.extensions += 1
            except (LeaseLost, Closed) as exc:
                log.warning(
                    "cannot extend the lease of %s on %s: %s",
                    self.message.id,
                    self.message.topic,
                    exc,
                )
                return
            except Exception as exc:  # a passing transport failure: try again next interval
                log.warning("extending the lease of %s failed: %s", self.message.id, exc)
            await asyncio.sleep(interval)

    def start(self) -> None:
        if self._task is None and self._timer is None and not self.message.settled:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.lease / 2, self._due)

    async def stop(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def __aenter__(self) -> LeaseKeeper:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
