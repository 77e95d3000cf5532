"""One active relay per outbox: leader election by a lock the database (or the OS) holds.

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a key derived from
  the table name, held on a connection of its own. When the active relay dies, even by
  SIGKILL, its connection closes and PostgreSQL releases the lock; a standby trying every
  ``retry`` seconds takes it over.
- SQLite: an exclusive ``flock`` on ``<database file>.<table>.relay-lock`` beside the database,
  released by the kernel when the holder dies.

The leader checks its lock connection every ``retry`` seconds; :meth:`Leadership.lost` is
set when it broke, and the relay stops publishing at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import zlib
from typing import Any

import sqlalchemy as sa

log = logging.getLogger("tidings.outbox")


def lock_key(table: str) -> int:
    """The advisory lock key of an outbox table (a signed 63-bit number)."""
    return zlib.crc32(f"tidings-outbox:{table}".encode()) | (0x7A11 << 32)


class Leadership:
    def __init__(self, engine: sa.Engine, table: str, retry: float = 0.5) -> None:
        self.engine = engine
        self.table = table
        self.retry = retry
        self.key = lock_key(table)
        self.lost = asyncio.Event()
        self._conn: Any = None
        self._fd: int | None = None
        self._watch: asyncio.Task[None] | None = None

    @property
    def kind(self) -> str:
        name = self.engine.dialect.name
        return name if name in ("postgresql", "sqlite") else "none"

    def _try(self) -> bool:
        if self.kind == "postgresql":
            raw = self.engine.raw_connection()
            try:
                cur = raw.cursor()
                cur.execute(f"SELECT pg_try_advisory_lock({self.key})")
                row = cur.fetchone()  # pg_try_advisory_lock always answers one row
                got = row is not None and bool(row[0])
                cur.close()
                raw.commit()
                if got:
                    self._conn = raw
                    log.debug("took advisory lock %d", self.key)
                    return True
            except BaseException:
                raw.invalidate()
                raise
            raw.invalidate()  # do not keep an idle session around
            return False
        if self.kind == "sqlite":
            path = self.engine.url.database
            if not path or path == ":memory:":
                return True  # an in-memory database has one process: nothing to elect
            fd = os.open(f"{path}.{self.table}.relay-lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            self._fd = fd
            return True
        return True

    async def acquire(self, stopping: asyncio.Event | None = None) -> bool:
        """Wait until this relay is the leader (False if ``stopping`` was set first)."""
        first = True
        while True:
            if await asyncio.to_thread(self._try):
                self.lost.clear()
                if self._conn is not None:
                    self._watch = asyncio.create_task(self._watch_lock())
                return True
            if first:
                log.info("another relay holds the outbox %r: standing by", self.table)
                first = False
            if stopping is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), self.retry)
                if stopping.is_set():
                    return False
            else:
                await asyncio.sleep(self.retry)

    def _ping(self) -> None:
        cur = self._conn.cursor()
        cur.execute("SELECT 1")
        cur.fetchone()
        cur.close()
        self._conn.commit()

    async def _watch_lock(self) -> None:
        while True:
            await asyncio.sleep(self.retry)
            try:
                await asyncio.to_thread(self._ping)
            except Exception as exc:
                log.error("lost the outbox lock connection (%s): stepping down", exc)
                self.lost.set()
                return

    async def release(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await asyncio.to_thread(conn.invalidate)  # closing the session frees the lock
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
