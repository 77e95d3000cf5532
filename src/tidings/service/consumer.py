"""Consumer: one handler's group membership, fetch loop, concurrency and shutdown.

Shared handlers run up to ``concurrency`` messages at once, in any order. Ordered handlers
(``mode="ordered"``) join an ordered group and run messages through :class:`KeyLanes`: the same
key strictly in order, different keys in parallel. A failing message of an ordered handler is
retried in place (its key waits, its lease is kept) so later messages of the key never overtake
it; after max deliveries attempts it is rejected to the dead-letter topic with the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from ..client import Subscription
from ..errors import Closed
from ..model import Message
from .execution import Handled, error_text, execute, nack_on_shutdown, retry_delay, settle
from .keylanes import KeyLanes
from .leases import LeaseKeeper
from .middleware import HandleNext

if TYPE_CHECKING:
    from .app import Service
    from .handlers import Handler

log = logging.getLogger("tidings.service")


class Consumer:
    def __init__(self, service: Service, handler: Handler, chain: HandleNext) -> None:
        self.service = service
        self.handler = handler
        self.chain = chain
        self.sub: Subscription | None = None
        self.ordered = handler.mode == "ordered"
        self._slots = asyncio.Semaphore(handler.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._lanes = KeyLanes(self._run_ordered)
        self._fetcher: asyncio.Task[None] | None = None
        self._left = False  # the subscription is closed: its messages went back to the group
        self._stopping = False

    @property
    def in_flight(self) -> int:
        return len(self._tasks) + len(self._lanes.tasks)

    async def start(self) -> None:
        h = self.handler
        client = self.service.client
        self.sub = await client.subscribe(
            h.topic,
            h.group,
            mode=h.mode,
            lease=h.lease,
            max_deliveries=h.max_deliveries,
            prefetch=h.concurrency,
            start=h.start,
            key_ordered=h.key_ordered,
            in_flight_per_partition=h.concurrency if self.ordered else 1,
        )
        self._fetcher = asyncio.create_task(self._fetch(), name=f"tidings-fetch-{h.name}")

    async def _fetch(self) -> None:
        # ``stopping`` is checked after every await: on Python 3.11 a cancellation that lands
        # just as a message arrives can be swallowed by asyncio.wait_for inside a transport.
        assert self.sub is not None
        while not self._stopping:
            await self._slots.acquire()
            try:
                message = await self.sub.next()
            except Closed:
                self._slots.release()
                return
            except Exception as exc:  # the transport hiccupped; it reconnects on its own
                self._slots.release()
                log.warning("fetching for %s failed: %s; retrying", self.handler.name, exc)
                await asyncio.sleep(0.5)
                continue
            if message is None or self._stopping:  # a message taken now goes back on leave
                self._slots.release()
                continue
            if self.ordered:
                self._lanes.submit(message)
            else:
                task = asyncio.create_task(self._run_shared(message))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _run_shared(self, message: Message) -> None:
        try:
            handled = await execute(
                self.service, self.handler, self.chain, message, message.delivery_count
            )
            await settle(self.service, self.handler, message, handled)
        except asyncio.CancelledError:
            if not self._left:
                await asyncio.shield(nack_on_shutdown(message))
            raise
        except Exception:  # a bug in the framework: never lose the fetch loop over it
            log.exception("handling %s on %s failed unexpectedly", message.id, message.topic)
        finally:
            self._slots.release()

    async def _run_ordered(self, message: Message) -> None:
        try:
            await self._retry_in_place(message)
        except asyncio.CancelledError:
            if not self._left:
                await asyncio.shield(nack_on_shutdown(message))
            raise
        except Exception:
            log.exception("handling %s on %s failed unexpectedly", message.id, message.topic)
        finally:
            self._slots.release()

    async def _retry_in_place(self, message: Message) -> None:
        h = self.handler
        attempt = message.delivery_count
        while True:
            handled: Handled = await execute(self.service, h, self.chain, message, attempt)
            if not handled.failed or h.responder:
                await settle(self.service, h, message, handled)
                return
            assert handled.error is not None
            self.service.notify(handled)
            if h.max_deliveries and attempt >= h.max_deliveries:
                reason = f"failed {attempt} times; last error: {error_text(handled.error)}"
                with contextlib.suppress(Exception):
                    await message.reject(reason)
                return
            if self._lanes.stopping:
                await nack_on_shutdown(message)
                return
            async with LeaseKeeper(message, h.lease):
                await asyncio.sleep(retry_delay(h, handled.error, attempt))
            attempt += 1

    async def stop(self, deadline: float) -> None:
        """Stop fetching, let in-flight handlings finish until ``deadline`` (loop time), then
        leave the group (which returns unfinished messages to it at once) and cancel the rest."""
        loop = asyncio.get_running_loop()
        self._stopping = True
        if self._fetcher is not None:
            self._fetcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._fetcher
        self._lanes.stopping = True
        running = self._tasks | self._lanes.tasks
        if running:
            _, pending = await asyncio.wait(running, timeout=max(0.0, deadline - loop.time()))
            if pending:
                await self._leave()
                for task in pending:
                    task.cancel()
                log.warning(
                    "%s: %d handlers still running after the grace period were cancelled",
                    self.handler.name,
                    len(pending),
                )
                await asyncio.gather(*pending, return_exceptions=True)
        await self._leave()

    async def _leave(self) -> None:
        if self.sub is not None and not self._left:
            self._left = True
            with contextlib.suppress(Exception):
                await self.sub.close()
