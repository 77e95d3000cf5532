"""BrokerRuntime: drives the synchronous engine from asyncio.

It owns the two things the engine must not do on the event loop:
- group commit: publishes append at once; a committer task takes a commit point, runs
  ``store.sync()`` (fsync) in a worker thread, then makes the covered messages deliverable and
  confirms their publishers. Every publish that arrived while one fsync ran shares the next.
- time: a timer task calls ``broker.tick()`` when the next lease, delay or session deadline
  is due.

fsync policies: ``batch`` (confirm only after the fsync that covers the message), ``interval``
(confirm at once after append, fsync every ``fsync_interval`` seconds), ``never`` (confirm
after append; the OS writes back when it likes). See docs/reliability.md.

Delivery under ``batch``: ``deliver="written"`` (default) hands a message to consumers as soon
as it is written to the OS, while its fsync runs; ``deliver="durable"`` only after that fsync.
A written message survives a broker crash; only a machine crash before the fsync can take it
back, and then its publisher was never confirmed (it retries). ``written`` keeps the fsync out
of publish-to-consumer latency (RabbitMQ's classic queues deliver the same way).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Literal

from ..clock import Clock
from ..errors import BadRequest
from ..model import Outgoing, Receipt
from ..storage.base import RecoveryReport, Store
from .engine import Broker
from .latency import LatencyHistogram

FsyncPolicy = Literal["batch", "interval", "never"]
DeliverPolicy = Literal["written", "durable"]

log = logging.getLogger("tidings.broker")


class BrokerRuntime:
    def __init__(
        self,
        store: Store,
        *,
        fsync: FsyncPolicy = "batch",
        fsync_interval: float = 0.05,
        deliver: DeliverPolicy = "written",
        clock: Clock | None = None,
        stuck_member_leases: int | None = None,
    ) -> None:
        if fsync not in ("batch", "interval", "never"):
            raise BadRequest(f"fsync must be 'batch', 'interval' or 'never', got {fsync!r}")
        if deliver not in ("written", "durable"):
            raise BadRequest(f"deliver must be 'written' or 'durable', got {deliver!r}")
        self.store = store
        self.fsync = fsync
        self.fsync_interval = fsync_interval
        self.deliver = deliver
        self.broker = Broker(
            store, clock=clock, confirm_after_sync=True, deliver_after_sync=deliver == "durable"
        )
        if stuck_member_leases is not None:
            self.broker.stuck_member_leases = stuck_member_leases
        self.broker.on_dirty = self._wake_committer
        self._commit_wanted = asyncio.Event()
        self._timer_wake = asyncio.Event()
        self.broker._timers.on_new_head = self._timer_wake.set
        self._waiters: list[asyncio.Future[None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.report: RecoveryReport | None = None
        self.syncs = 0
        self.sync_latency = LatencyHistogram()  # seconds per store.sync() (fsync)
        self._stopping = False

    async def start(self) -> RecoveryReport:
        loop = asyncio.get_running_loop()
        self.broker.defer_dispatch = loop.call_soon
        self.report = await loop.run_in_executor(None, self.broker.open)
        self._tasks = [
            asyncio.create_task(self._committer(), name="tidings-commit"),
            asyncio.create_task(self._timer(), name="tidings-timers"),
        ]
        return self.report

    async def stop(self) -> None:
        if self._stopping:
            return
        self.broker.close()
        await self.commit()
        # Loops exit on the flag; a cancel could be swallowed when it races a wake-up.
        self._stopping = True
        self._commit_wanted.set()
        self._timer_wake.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await asyncio.get_running_loop().run_in_executor(None, self.store.close)

    # -- publishing --------------------------------------------------------------------------

    async def publish(
        self, topic: str, messages: Sequence[Outgoing], origin: str | None = None
    ) -> list[Receipt]:
        """Publish and return once the messages are confirmed under the fsync policy.
        ``origin`` names the publisher in the message trace (when the topic is traced)."""
        tracer = self.broker.tracer
        if tracer is None:
            receipts = self.broker.publish(topic, messages)
        else:
            tracer.origin = origin
            try:
                receipts = self.broker.publish(topic, messages)
            finally:
                tracer.origin = None
        if self.fsync == "batch" and self.broker.has_pending():
            await self.commit()
        return receipts

    async def redrive(
        self, topic: str, group: str, ids: Sequence[str] | None = None, limit: int | None = None
    ) -> list[str]:
        """Redrive dead letters (see ``Broker.redrive``); return once the republish and the
        record of what was redriven are confirmed under the fsync policy."""
        done = self.broker.redrive(topic, group, ids, limit)
        if self.fsync == "batch" and self.broker.has_pending():
            await self.commit()
        return done

    async def discard_dead_letters(
        self, topic: str, group: str, ids: Sequence[str] | None = None, limit: int | None = None
    ) -> list[str]:
        """Discard dead letters (see ``Broker.discard_dead_letters``), confirmed likewise."""
        done = self.broker.discard_dead_letters(topic, group, ids, limit)
        if self.fsync == "batch" and self.broker.has_pending():
            await self.commit()
        return done

    async def delete_message(self, topic: str, message_id: str) -> tuple[int, int, list[str]]:
        """Delete one message by id (see ``Broker.delete_message``); return once the
        deletion (the topic's record of it and every group's settle) is durable under the
        fsync policy."""
        done = self.broker.delete_message(topic, message_id)
        if self.fsync == "batch":
            await self.commit()
        return done

    async def purge_topic(self, topic: str) -> int:
        """Purge a topic (see ``Broker.purge_topic``); return once the groups' new positions
        are durable (every fsync policy: a purge must not come back after a restart)."""
        dropped = self.broker.purge_topic(topic)
        await self.commit()
        return dropped

    async def commit(self) -> None:
        """Wait until everything appended so far is durable and visible."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._commit_wanted.set()
        await fut

    def _wake_committer(self) -> None:
        self._commit_wanted.set()
        if self.fsync != "batch":
            self._timer_wake.set()

    async def _committer(self) -> None:
        loop = asyncio.get_running_loop()
        broker = self.broker
        while not self._stopping:
            await self._commit_wanted.wait()
            if self._stopping:
                break
            self._commit_wanted.clear()
            waiters, self._waiters = self._waiters, []
            point = broker.commit_point()
            try:
                if self.fsync == "never":
                    # Data goes to the OS only; but a new topic or group must reach the disk
                    # (the store writes its catalogue at sync) or a kill would forget it.
                    if broker.catalogue_changed:
                        broker.catalogue_changed = False
                        await loop.run_in_executor(None, self.store.sync)
                elif self.fsync == "interval" and not waiters:
                    broker.make_visible(point)  # visible now; the fsync follows on its interval
                    point = []
                    await asyncio.sleep(self.fsync_interval)
                    began = time.perf_counter()
                    await loop.run_in_executor(None, self.store.sync)
                    self.sync_latency.observe(time.perf_counter() - began)
                else:
                    began = time.perf_counter()
                    await loop.run_in_executor(None, self.store.sync)
                    self.sync_latency.observe(time.perf_counter() - began)
                self.syncs += 1
            except Exception as exc:  # the store raised (e.g. StorageFull): fail the waiters
                log.error("commit failed: %s", exc)
                for fut in waiters:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            broker.make_visible(point)
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
            self._timer_wake.set()

    # -- timers ------------------------------------------------------------------------------

    async def _timer(self) -> None:
        while not self._stopping:
            delay = self.broker.tick()
            self._timer_wake.clear()
            timeout = 1.0 if delay is None else min(delay, 1.0)
            try:
                async with asyncio.timeout(timeout):
                    await self._timer_wake.wait()
            except TimeoutError:
                pass

    def poke(self) -> None:
        """Make the timer task run soon (after a clock jump in tests)."""
        self._timer_wake.set()
