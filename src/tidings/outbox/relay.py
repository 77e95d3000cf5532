"""The relay: moves committed outbox rows to the broker, one active relay per outbox.

    relay = Relay(outbox, "tidings://127.0.0.1:7420", mode="poll")   # or mode="tail"
    await relay.run()            # until relay.stop(); or: async with relay.running(): ...

Each round: take a batch from the source (:mod:`.polling` or :mod:`.tailing`), publish it
with the rows' msg_ids and wait for the broker's confirms, then mark the rows (poll) or
confirm the slot's LSN (tail). A crash between the confirm and the mark re-sends the batch
on restart; the broker's dedup absorbs it. Broker outages are retried with backoff, the same
batch again, so nothing is lost or reordered. Only the leader (:mod:`.leader`) publishes;
the others stand by and take over when it dies. Published rows are deleted after
``retention`` seconds. Progress goes to the log and to ``tidings outbox status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import sqlalchemy as sa

from ..client import AsyncClient
from ..errors import BadRequest, TidingsError
from .leader import Leadership
from .polling import PollSource
from .rows import Row, publish_rows
from .status import relays_table, report
from .tailing import TailSource
from .writer import Outbox

log = logging.getLogger("tidings.outbox")

Mode = Literal["poll", "tail"]


class Relay:
    """Publishes an outbox's committed rows to a broker."""

    def __init__(
        self,
        outbox: Outbox,
        broker: str | None = None,
        *,
        mode: Mode = "poll",
        batch_size: int | None = None,
        min_interval: float = 0.01,
        max_interval: float = 1.0,
        retention: float = 24 * 3600.0,
        cleanup_interval: float = 60.0,
        report_interval: float = 2.0,
        slot: str | None = None,
        publication: str | None = None,
        leader_retry: float = 0.5,
        max_backoff: float = 5.0,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        if mode not in ("poll", "tail"):
            raise BadRequest(f"relay mode must be 'poll' or 'tail', got {mode!r}")
        engine = outbox.sync_engine
        if mode == "tail" and engine.dialect.name != "postgresql":
            raise BadRequest(
                f"--mode tail reads PostgreSQL's WAL; this database is {engine.dialect.name}: "
                "use --mode poll"
            )
        self.outbox = outbox
        self.engine = engine
        self.broker = broker
        self.mode: Mode = mode
        self.batch_size = batch_size or (2000 if mode == "tail" else 500)
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.retention = retention
        self.cleanup_interval = cleanup_interval
        self.report_interval = report_interval
        self.slot = slot
        self.publication = publication
        self.max_backoff = max_backoff
        self.client_options = dict(client_options or {})
        self.leadership = Leadership(engine, outbox.name, leader_retry)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{id(self) & 0xFFFF:04x}"
        self.role = "starting"
        self.published = 0
        self.duplicates = 0
        self.batches = 0
        self.last_error: str | None = None
        self.max_row_id = 0  # the highest row id confirmed (tail mode's cleanup bound)
        self.after_publish: Callable[[list[Row]], None] | None = None  # tests: crash points
        self._stopping = asyncio.Event()
        self._client: AsyncClient | None = None
        self._relays = relays_table(outbox.name, sa.MetaData())
        self._started_at = time.time()
        self._rate = 0.0

    # lifecycle
    def stop(self) -> None:
        self._stopping.set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Relay]:
        task = asyncio.create_task(self.run())
        try:
            yield self
        finally:
            self.stop()
            await task

    async def run(self) -> None:
        """Stand by until leader, then relay until :meth:`stop`."""
        self._stopping.clear()
        await asyncio.to_thread(self._check)
        reporter = asyncio.create_task(self._report_loop())
        try:
            while not self._stopping.is_set():
                self.role = "standby"
                if not await self.leadership.acquire(self._stopping):
                    break
                self.role = "active"
                log.info("relay %s is active on outbox %r (%s mode)", self.holder,
                         self.outbox.name, self.mode)  # fmt: skip
                try:
                    await self._lead()
                finally:
                    await self.leadership.release()
        finally:
            self.role = "stopped"
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._report)
            if self._client is not None:
                client, self._client = self._client, None
                with contextlib.suppress(Exception):
                    await client.close()

    def _check(self) -> None:
        with self.engine.connect() as conn:
            self.outbox.check_table(conn)
        try:
            self._relays.create(self.engine, checkfirst=True)
        except sa.exc.DBAPIError:
            # relays started together race to create the status table; PostgreSQL fails the
            # losers' CREATE TABLE (a unique violation on pg_type): fine once the table is there
            with self.engine.connect() as conn:
                if not sa.inspect(conn).has_table(self._relays.name):
                    raise

    async def _lead(self) -> None:
        """Relay as the leader until stopped or the lock is lost."""
        work = asyncio.create_task(self._relay_loop())
        stop = asyncio.create_task(self._stopping.wait())
        lost = asyncio.create_task(self.leadership.lost.wait())
        try:
            await asyncio.wait([work, stop, lost], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (work, stop, lost):
                task.cancel()
            for task in (work, stop, lost):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _source(self) -> PollSource | TailSource:
        if self.mode == "tail":
            return TailSource(self.outbox, slot=self.slot, publication=self.publication,
                              batch_size=self.batch_size)  # fmt: skip
        return PollSource(
            self.outbox,
            batch_size=self.batch_size,
            min_interval=self.min_interval,
            max_interval=self.max_interval,
        )

    async def _relay_loop(self) -> None:
        delay = 0.1
        cleanup = asyncio.create_task(self._cleanup_loop())
        try:
            while True:
                source = self._source()
                try:
                    await source.open()
                    if isinstance(source, TailSource) and source.backfill_to is not None:
                        await self._backfill(source.backfill_to)
                        await source.backfilled()
                    while True:
                        rows = await source.next_batch()
                        await self._publish(rows)
                        if self.after_publish is not None:
                            self.after_publish(rows)
                        await source.confirm(rows)
                        self._count(rows)
                        delay = 0.1
                except BadRequest as exc:  # a configuration the relay cannot fix by retrying
                    self.last_error = exc.message
                    log.error("outbox relay: %s", exc.message)
                    raise
                except (TidingsError, sa.exc.SQLAlchemyError, OSError, Exception) as exc:
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.warning("outbox relay: %s; retrying in %.1fs", self.last_error, delay)
                    await asyncio.sleep(delay)
                    delay = min(self.max_backoff, delay * 2)
                finally:
                    await source.close()
        finally:
            cleanup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await cleanup

    async def _backfill(self, upto: int) -> None:
        """Rows written before the slot existed are not in its stream: poll out the unpublished
        ones up to id ``upto`` (later rows come from the stream; one committed late below the
        bound may come twice, and the broker's dedup absorbs it)."""
        source = PollSource(self.outbox, batch_size=min(self.batch_size, 1000))
        while rows := [r for r in await source.fetch() if r.id <= upto]:
            await self._publish(rows)
            if self.after_publish is not None:
                self.after_publish(rows)
            await source.confirm(rows)
            self._count(rows)

    def _count(self, rows: list[Row]) -> None:
        self.published += len(rows)
        self.batches += 1
        self.max_row_id = max(self.max_row_id, max(r.id for r in rows))

    async def _connect(self) -> AsyncClient:
        if self._client is None:
            client = AsyncClient(self.broker, **self.client_options)
            await client.connect()
            self._client = client
        return self._client

    async def _publish(self, rows: list[Row]) -> None:
        """Publish until the broker confirmed every row (retrying the same batch)."""
        delay = 0.1
        while True:
            try:
                client = await self._connect()
                self.duplicates += await publish_rows(client, rows)
                if self.last_error is not None and self.last_error.startswith("broker"):
                    log.info("outbox relay: the broker is back")
                    self.last_error = None
                return
            except TidingsError as exc:
                self.last_error = f"broker: {type(exc).__name__}: {exc.message}"
                log.warning("outbox relay: publish failed (%s); retrying %d rows in %.1fs",
                            self.last_error, len(rows), delay)  # fmt: skip
                stale, self._client = self._client, None
                if stale is not None:
                    with contextlib.suppress(Exception):
                        await stale.close()
                await asyncio.sleep(delay)
                delay = min(self.max_backoff, delay * 2)

    # housekeeping
    def _cleanup(self) -> int:
        t = self.outbox.table
        cutoff = time.time() - self.retention
        if self.mode == "poll":
            where = sa.and_(t.c.published_at.is_not(None), t.c.published_at < cutoff)
        else:
            where = sa.and_(t.c.created_at < cutoff, t.c.id <= self.max_row_id)
        with self.engine.begin() as conn:
            return conn.execute(t.delete().where(where)).rowcount or 0

    async def _cleanup_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cleanup_interval)
            try:
                removed = await asyncio.to_thread(self._cleanup)
                if removed:
                    log.info("outbox relay: removed %d published rows", removed)
            except Exception as exc:
                log.warning("outbox cleanup failed: %s", exc)

    def _report(self) -> None:
        report(self.engine, self._relays, {
            "holder": self.holder, "mode": self.mode, "role": self.role,
            "updated_at": time.time(), "started_at": self._started_at,
            "published": self.published, "duplicates": self.duplicates, "rate": self._rate,
            "last_error": self.last_error,
        })  # fmt: skip

    async def _report_loop(self) -> None:
        last, last_t = self.published, time.monotonic()
        while True:
            try:
                await asyncio.to_thread(self._report)
            except Exception as exc:
                log.debug("outbox relay: could not report status: %s", exc)
            await asyncio.sleep(self.report_interval)
            now = time.monotonic()
            self._rate = (self.published - last) / max(now - last_t, 1e-9)
            if self.published != last:
                log.info("outbox relay: %d rows published (%.0f rows/s), %d duplicates absorbed",
                         self.published, self._rate, self.duplicates)  # fmt: skip
            last, last_t = self.published, now

    @property
    def stats(self) -> dict[str, Any]:
        return {
            "holder": self.holder, "mode": self.mode, "role": self.role,
            "published": self.published, "duplicates": self.duplicates,
            "batches": self.batches, "rate": self._rate, "last_error": self.last_error,
        }  # fmt: skip
