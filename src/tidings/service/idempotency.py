"""Idempotent consumers: a store of processed message ids, so duplicates are skipped.

At-least-once delivery means a message can arrive twice (a lease expired, an ack was lost). An
``idempotent=True`` handler records each processed message id (the producer ``msg_id`` when
there is one, else the broker's id) in a SQL table and skips ids already there. The record is
written in the same database transaction the handler can use for its own writes
(``ctx.transaction``), so "work done" and "id recorded" commit together or not at all::

    processed(consumer, message_id, processed_at)   primary key (consumer, message_id)

Flow per message: BEGIN; look the id up (found: skip, ack); run the handler; INSERT the id;
COMMIT; ack. A concurrent duplicate that slipped past the lookup fails the INSERT on the
primary key, rolls its work back and is acknowledged as a duplicate.

Ids older than ``window`` seconds are deleted by a background task; keep the window longer
than any redelivery can take (max deliveries x backoff) and than producers retry.

Any SQLAlchemy URL works: ``sqlite:///path.db`` (the default is a file in ``.tidings/``),
``postgresql+psycopg://...``. Database calls run in a worker thread, off the event loop.

SQLite allows one writer at a time, and a handler's own ``ctx.transaction`` statements run on
the event loop's thread. If two handlings held write transactions at once, the second write
would block the loop on SQLite's lock while the first could never commit: a deadlock. So on
SQLite, handlings take turns (an asyncio lock around each guard); use PostgreSQL for
idempotent handlers that must write concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

# SQLAlchemy is imported when a store is built, not with the service framework: most services
# have no idempotent handler, and the import cost ~0.3 s and ~10 MiB in every process.

from ..errors import BadRequest

log = logging.getLogger("tidings.service")

DEFAULT_WINDOW = 7 * 24 * 3600.0


class DuplicateMessage(Exception):
    """A concurrent handling of the same message committed first."""


IN_MEMORY_URL = "sqlite://"  # the default store on memory://: gone with the process


def default_url(service: str) -> str:
    path = Path(".tidings") / f"{service}-processed.sqlite3"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def _in_memory(url: str) -> bool:
    return url in ("sqlite://", "sqlite:///", "sqlite:///:memory:") or "mode=memory" in url


def _make_engine(url: str) -> Engine:
    import sqlalchemy as sa

    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True)
    options: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
    if _in_memory(url):  # one shared connection, or each thread would see its own database
        options["poolclass"] = sa.pool.StaticPool
    engine = sa.create_engine(url, **options)

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        if not _in_memory(url):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


class Guard:
    """The open transaction of one idempotent handling."""

    def __init__(self, connection: Connection, duplicate: bool) -> None:
        self.connection = connection
        self.duplicate = duplicate


class IdempotencyStore:
    """Processed message ids in a SQL table (SQLAlchemy)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        engine: Engine | None = None,
        window: float = DEFAULT_WINDOW,
        cleanup_interval: float = 600.0,
        table: str = "tidings_processed",
        clock: Callable[[], float] = time.time,
        serialize: bool | None = None,
    ) -> None:
        """``serialize``: handlings take turns (None: on SQLite, see the module docstring).
        Pass False when handlers never write through ``ctx.transaction`` on the event loop,
        e.g. because their writes run in the commit step (``_commit_record``) in a worker
        thread; they then run concurrently."""
        if engine is None and url is None:
            raise BadRequest("IdempotencyStore needs a SQLAlchemy url or engine")
        self.engine = engine if engine is not None else _make_engine(url or "")
        self._owns_engine = engine is None
        self.window = window
        self.cleanup_interval = cleanup_interval
        self.clock = clock
        import sqlalchemy as sa

        self.metadata = sa.MetaData()
        self.table = sa.Table(
            table,
            self.metadata,
            sa.Column("consumer", sa.String(400), primary_key=True),
            sa.Column("message_id", sa.String(200), primary_key=True),
            sa.Column("processed_at", sa.Float, nullable=False, index=True),
        )
        self.metadata.create_all(self.engine)
        self._single_writer = (
            self.engine.dialect.name == "sqlite" if serialize is None else serialize
        )
        self._turns: asyncio.Lock | None = None
        self._slots: asyncio.Semaphore | None = None  # shared with the outbox's transactions

    # the building blocks, synchronous (run in a worker thread by the async API)
    def _exists(self, conn: Connection, consumer: str, message_id: str) -> bool:
        t = self.table
        from sqlalchemy import select

        query = select(t.c.message_id).where(t.c.consumer == consumer, t.c.message_id == message_id)
        return conn.execute(query).first() is not None

    def _record(self, conn: Connection, consumer: str, message_id: str) -> None:
        conn.execute(
            self.table.insert().values(
                consumer=consumer, message_id=message_id, processed_at=self.clock()
            )
        )

    def _begin(self) -> Connection:
        conn = self.engine.connect()
        conn.begin()
        return conn

    def _commit_record(self, conn: Connection, consumer: str, message_id: str) -> None:
        from sqlalchemy.exc import IntegrityError

        try:
            self._record(conn, consumer, message_id)
            conn.commit()
        except IntegrityError as exc:
            conn.rollback()
            raise DuplicateMessage(message_id) from exc

    @contextlib.asynccontextmanager
    async def guard(self, consumer: str, message_id: str) -> AsyncIterator[Guard]:
        """Open a transaction and tell whether ``message_id`` was processed. On a clean exit
        of a non-duplicate the id is recorded and everything commits; on an exception
        everything rolls back. Raises DuplicateMessage if a concurrent handling won."""
        if not self._single_writer:
            if self._slots is None:
                async with self._guard(consumer, message_id) as guard:
                    yield guard
                return
            async with self._slots, self._guard(consumer, message_id) as guard:
                yield guard
            return
        if self._turns is None:
            self._turns = asyncio.Lock()
        async with self._turns, self._guard(consumer, message_id) as guard:
            yield guard

    def _begin_checked(self, consumer: str, message_id: str) -> tuple[Connection, bool]:
        conn = self._begin()
        try:
            return conn, self._exists(conn, consumer, message_id)
        except BaseException:
            conn.close()
            raise

    def _end(self, conn: Connection, record: tuple[str, str] | None) -> None:
        """Record the id and commit (``record``), or roll back; then close: one hop."""
        try:
            if record is None:
                conn.rollback()
            else:
                self._commit_record(conn, *record)
        finally:
            conn.close()

    @contextlib.asynccontextmanager
    async def _guard(self, consumer: str, message_id: str) -> AsyncIterator[Guard]:
        # one worker-thread hop to begin and look the id up, one to commit and close (four
        # before: each is a thread wake-up and a future on the loop)
        conn, duplicate = await asyncio.to_thread(self._begin_checked, consumer, message_id)
        try:
            yield Guard(conn, duplicate)
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(asyncio.to_thread(self._end, conn, None))
            raise
        record = None if duplicate else (consumer, message_id)
        await asyncio.shield(asyncio.to_thread(self._end, conn, record))

    async def is_processed(self, consumer: str, message_id: str) -> bool:
        def run() -> bool:
            with self.engine.connect() as conn:
                return self._exists(conn, consumer, message_id)

        return await asyncio.to_thread(run)

    async def mark_processed(self, consumer: str, message_id: str) -> bool:
        """Record ``message_id`` outside a handler; False if it was already there."""

        from sqlalchemy.exc import IntegrityError

        def run() -> bool:
            with self.engine.connect() as conn:
                try:
                    self._record(conn, consumer, message_id)
                    conn.commit()
                    return True
                except IntegrityError:
                    return False

        return await asyncio.to_thread(run)

    def cleanup(self, now: float | None = None) -> int:
        """Delete ids older than the window; returns how many went."""
        cutoff = (self.clock() if now is None else now) - self.window
        with self.engine.begin() as conn:
            result = conn.execute(self.table.delete().where(self.table.c.processed_at < cutoff))
            return result.rowcount or 0

    async def run_cleanup(self) -> None:
        """Clean up every ``cleanup_interval`` seconds until cancelled."""
        while True:
            try:
                removed = await asyncio.to_thread(self.cleanup)
                if removed:
                    log.info("idempotency store: removed %d expired message ids", removed)
            except Exception as exc:
                log.warning("idempotency store cleanup failed: %s", exc)
            await asyncio.sleep(self.cleanup_interval)

    def close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()
