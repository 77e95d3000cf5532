"""The polling relay's source: unpublished rows read in id order, marked once confirmed.

Late commits: ids are taken when a row is inserted, not when its transaction commits, so a row
with a lower id can become visible after a higher one was read and published. The relay never
skips it because it selects by the ``published_at IS NULL`` flag, not by "ids above the last
one read": the late row is picked up by the next poll. (On SQLite there is one writer at a
time, so ids are commit order anyway.) Rows of one key stay in order when the application
writes a key's rows in transactions that follow each other (the usual case: they update the
same business row, which serializes them).

Waking up: on PostgreSQL the table's trigger notifies a channel at every commit and the relay
LISTENs, so an idle relay costs nothing and a write is picked up at once (a slow poll every
``max_interval`` stays as a safety net). Elsewhere the interval adapts: ``min_interval`` while
rows keep coming, doubling to ``max_interval`` while the table stays empty.

The LISTEN connection is the relay's own: detached from the engine's pool (it is in autocommit
and subscribed to the channel, so it must never serve the application's transactions), and
closed only after the thread waiting on it has returned (woken through a pipe). Before, it went
back to the pool while that thread could still call ``poll()`` on it, and the thread then read
the next user's query result off the socket, leaving that user blocked in libpq forever. The
relay keeps the psycopg2 connection itself: a detached pool proxy's ``driver_connection`` is
None, and waiting through it once failed at every idle moment (the relay then retried after
0.1-0.2 s, so each row waited that long: ~130 ms per saga step on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import time
from typing import Any

import sqlalchemy as sa

from .rows import Row, decode_headers
from .writer import Outbox

log = logging.getLogger("tidings.outbox")

_READ = ("id", "msg_id", "topic", "key", "headers", "body", "delay", "created_at")


class PollSource:
    """Reads batches of unpublished rows and marks them published."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        batch_size: int = 500,
        min_interval: float = 0.01,
        max_interval: float = 1.0,
    ) -> None:
        self.outbox = outbox
        self.engine = outbox.sync_engine
        self.batch_size = batch_size
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.interval = min_interval
        t = outbox.table
        self._select = (
            sa.select(*(t.c[c] for c in _READ))
            .where(t.c.published_at.is_(None))
            .order_by(t.c.id)
            .limit(sa.bindparam("limit"))
        )
        self._mark = (
            t.update()
            .where(t.c.id.in_(sa.bindparam("ids", expanding=True)))
            .values(published_at=sa.bindparam("now"))
        )
        self._listener: Any = None
        self._waiting: asyncio.Future[None] | None = None  # the thread in _wait_notify
        self._wake: tuple[int, int] | None = None  # pipe that ends a _wait_notify early

    @property
    def postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    # database calls (run in a worker thread)
    def _fetch(self) -> list[Row]:
        with self.engine.connect() as conn:
            result = conn.execute(self._select, {"limit": self.batch_size}).all()
        return [
            Row(r[0], r[1], r[2], r[3], decode_headers(r[4]), bytes(r[5]), r[6], r[7])
            for r in result
        ]

    def _mark_rows(self, ids: list[int]) -> None:
        with self.engine.begin() as conn:
            for start in range(0, len(ids), 5000):
                conn.execute(self._mark, {"ids": ids[start : start + 5000], "now": time.time()})

    async def fetch(self) -> list[Row]:
        return await asyncio.to_thread(self._fetch)

    async def confirm(self, rows: list[Row]) -> None:
        await asyncio.to_thread(self._mark_rows, [r.id for r in rows])

    # waiting for rows
    async def open(self) -> None:
        if self.postgres:
            await asyncio.to_thread(self._listen)

    def _listen(self) -> None:
        raw = self.engine.raw_connection()
        driver: Any = raw.driver_connection  # None for a detached proxy: the check below
        if type(driver).__module__.split(".")[0] != "psycopg2":
            raw.close()  # LISTEN needs psycopg2 here; poll on the interval instead
            return
        raw.detach()  # the relay's own session from here on, closed (not pooled) at the end
        driver.set_session(autocommit=True)
        with driver.cursor() as cur:
            cur.execute(f'LISTEN "{self.outbox.name}"')
        self._wake = os.pipe()
        # the psycopg2 connection itself: a detached pool proxy has no driver_connection
        # (None), so waiting through it failed at every idle moment
        self._listener = driver

    async def next_batch(self) -> list[Row]:
        """The next unpublished rows in id order, waiting until there are some."""
        while True:
            rows = await self.fetch()
            if rows:
                self.interval = self.min_interval
                return rows
            await self._wait()

    async def _wait(self) -> None:
        if self._listener is not None and self._wake is not None:  # set together by _listen
            loop = asyncio.get_running_loop()
            self._waiting = loop.run_in_executor(
                None, self._wait_notify, self._listener, self._wake, self.max_interval
            )
            # shielded: a cancelled relay leaves the thread running; close() waits for it
            await asyncio.shield(self._waiting)
            return
        await asyncio.sleep(self.interval)
        self.interval = min(self.max_interval, self.interval * 2)

    @staticmethod
    def _wait_notify(listener: Any, wake: tuple[int, int], timeout: float) -> None:
        # given its connection and pipe, not reading them from self: close() clears those
        driver = listener
        driver.poll()
        if not driver.notifies:
            ready, _, _ = select.select([driver, wake[0]], [], [], timeout)
            if wake[0] in ready:
                return  # closing
            driver.poll()
        driver.notifies.clear()

    async def close(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            assert self._wake is not None
            wake_read, wake_write = self._wake
            waiting, self._waiting = self._waiting, None
            if waiting is not None and not waiting.done():
                os.write(wake_write, b"x")
                with contextlib.suppress(Exception):
                    await waiting
            with contextlib.suppress(Exception):
                await asyncio.to_thread(listener.close)
            os.close(wake_read)
            os.close(wake_write)
            self._wake = None
