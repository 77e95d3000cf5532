"""The log-tailing relay's source: inserts decoded from PostgreSQL's WAL (logical decoding).

A logical replication slot (plugin ``pgoutput``) and a publication on the outbox table
(``publish = 'insert'``) stream every committed insert in commit order; psycopg2's
``LogicalReplicationConnection`` speaks the replication protocol. A reader thread decodes the
stream (:mod:`.pgoutput`) and hands whole committed transactions to the relay; the slot's
position is confirmed (``flush_lsn`` feedback) only up to the end of transactions the broker
confirmed, so a restarted relay receives again everything after the last confirm and the
broker's dedup absorbs what had already gone out.

An idle outbox must not pin WAL while other tables are written: when every transaction handed
over is confirmed and none is half-read, the reader confirms the server's current WAL end as
reported by its keepalives. The relay's status heartbeat (a row it updates in another table)
keeps WAL moving past the slot even on an otherwise idle database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import threading
import time
from typing import Any

import sqlalchemy as sa

from ..errors import BadRequest
from .pgoutput import Begin, Commit, Decoder, Insert, bytea
from .rows import Row, decode_headers
from .table import default_slot
from .writer import Outbox

log = logging.getLogger("tidings.outbox")


class SlotBusy(Exception):
    """The slot is streaming to someone else (retried: a dead relay's walsender may linger)."""


def libpq_dsn(engine: sa.Engine) -> str:
    """The engine's URL as a libpq connection URI (no SQLAlchemy driver name)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def _row(values: dict[str, str | None]) -> Row:
    delay = values.get("delay")
    return Row(
        int(values["id"] or 0),
        values["msg_id"] or "",
        values["topic"] or "",
        values.get("key"),
        decode_headers(values.get("headers") or ""),
        bytea(values["body"] or "\\x"),
        float(delay) if delay is not None else None,
        float(values["created_at"] or 0),
    )


class TailSource:
    """Streams committed outbox inserts from a replication slot."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        slot: str | None = None,
        publication: str | None = None,
        batch_size: int = 2000,
        slot_wait: float = 10.0,
        feedback_interval: float = 1.0,
    ) -> None:
        self.outbox = outbox
        self.engine = outbox.sync_engine
        self.slot = slot or default_slot(outbox.name, self.engine.url.database)
        self.publication = publication or f"{outbox.name}_pub"
        self.batch_size = batch_size
        self.slot_wait = slot_wait
        self.feedback_interval = feedback_interval
        self.created = False  # this start created the slot
        # rows written before the slot existed are not in its stream: the relay polls them out
        # up to this id first. Kept in the database (BACKFILL_TABLE) until the backfill is done,
        # so a relay that dies mid-backfill leaves it to the next one
        self.backfill_to: int | None = None
        self._queue: asyncio.Queue[Any] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._confirmed = 0  # set by the relay, read by the reader thread
        self._handed = 0  # end LSN of the last transaction handed over
        self._batch_lsn = 0
        self._pending: list[tuple[list[Row], int]] = []

    # preparing: wal_level, table, publication, slot
    def _prepare(self) -> None:
        with self.engine.connect() as conn:
            level = conn.exec_driver_sql("SHOW wal_level").scalar()
            if level != "logical":
                raise BadRequest(
                    f"--mode tail needs wal_level = logical, this database has {level!r}: set "
                    "wal_level = logical (and max_replication_slots, max_wal_senders > 0) in "
                    "postgresql.conf and restart PostgreSQL, or use --mode poll"
                )
            self.outbox.check_table(conn)
            has_pub = conn.execute(
                sa.text("SELECT 1 FROM pg_publication WHERE pubname = :p"), {"p": self.publication}
            ).first()
            if has_pub is None:
                conn.exec_driver_sql(
                    f'CREATE PUBLICATION "{self.publication}" FOR TABLE "{self.outbox.name}" '
                    "WITH (publish = 'insert')"
                )
                conn.commit()
            else:
                covers = conn.execute(
                    sa.text(
                        "SELECT 1 FROM pg_publication_tables WHERE pubname = :p AND tablename = :t"
                    ),
                    {"p": self.publication, "t": self.outbox.name},
                ).first()
                if covers is None:
                    raise BadRequest(
                        f"the publication {self.publication!r} exists but does not cover the "
                        f"table {self.outbox.name!r}: drop it or pass another --publication"
                    )
            conn.commit()
        deadline = time.monotonic() + self.slot_wait
        while True:
            with self.engine.connect() as conn:
                slot = conn.execute(
                    sa.text(
                        "SELECT plugin, slot_type, database, active_pid FROM pg_replication_slots "
                        "WHERE slot_name = :s"
                    ),
                    {"s": self.slot},
                ).first()
                if slot is None:
                    # pending before the slot exists: a crash in between leaves it pending
                    self._set_backfill(conn, None)
                    conn.execute(
                        sa.text("SELECT pg_create_logical_replication_slot(:s, 'pgoutput')"),
                        {"s": self.slot},
                    )
                    conn.commit()
                    self.created = True
                    log.info("created replication slot %r (pgoutput)", self.slot)
                    self.backfill_to = self._backfill_bound(conn)
                    return
                self.backfill_to = self._pending_backfill(conn)
                database = conn.engine.url.database
            plugin, kind, slot_db, active_pid = slot
            if kind != "logical" or plugin != "pgoutput" or slot_db != database:
                raise BadRequest(
                    f"the replication slot {self.slot!r} belongs to someone else (a {kind} slot "
                    f"of plugin {plugin!r} on database {slot_db!r}): pass another --slot, or "
                    "drop it with SELECT pg_drop_replication_slot(...) if it is unused"
                )
            if active_pid is None:
                return
            if time.monotonic() > deadline:  # retried by the relay, with this message
                raise SlotBusy(
                    f"the replication slot {self.slot!r} is in use by another process (PID "
                    f"{active_pid}) that does not hold the outbox's relay lock: stop it or pass "
                    "another --slot"
                )
            time.sleep(0.2)  # a relay that just died: its walsender is going away

    # the backfill's bound, one row per slot
    def _state(self, conn: sa.Connection) -> str:
        name = f"{self.outbox.name}_backfill"
        conn.exec_driver_sql(
            f'CREATE TABLE IF NOT EXISTS "{name}" (slot VARCHAR(63) PRIMARY KEY, upto BIGINT)'
        )
        return name

    def _set_backfill(self, conn: sa.Connection, upto: int | None) -> None:
        name = self._state(conn)
        conn.execute(sa.text(f'DELETE FROM "{name}" WHERE slot = :s'), {"s": self.slot})
        conn.execute(sa.text(f'INSERT INTO "{name}" VALUES (:s, :u)'), {"s": self.slot, "u": upto})
        conn.commit()

    def _backfill_bound(self, conn: sa.Connection) -> int:
        """The highest id now (every row committed before the slot's start is at or below
        it; rows above it are in the stream), stored as the pending backfill's bound."""
        upto = conn.execute(sa.select(sa.func.coalesce(sa.func.max(self.outbox.table.c.id), 0)))
        bound = int(upto.scalar() or 0)
        self._set_backfill(conn, bound)
        return bound

    def _pending_backfill(self, conn: sa.Connection) -> int | None:
        name = self._state(conn)
        row = conn.execute(
            sa.text(f'SELECT upto FROM "{name}" WHERE slot = :s'), {"s": self.slot}
        ).first()
        conn.commit()
        if row is None:
            return None
        return int(row[0]) if row[0] is not None else self._backfill_bound(conn)

    def _finish_backfill(self) -> None:
        with self.engine.connect() as conn:
            name = self._state(conn)
            conn.execute(sa.text(f'DELETE FROM "{name}" WHERE slot = :s'), {"s": self.slot})
            conn.commit()
        self.backfill_to = None

    async def backfilled(self) -> None:
        """The relay polled out every row up to :attr:`backfill_to`."""
        await asyncio.to_thread(self._finish_backfill)

    async def _prepare_async(self) -> None:
        await asyncio.to_thread(self._prepare)

    async def open(self) -> None:
        await asyncio.to_thread(self._prepare)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._queue = queue
        self._stop.clear()
        self._handed = self._confirmed = 0
        loop = asyncio.get_running_loop()
        started = threading.Event()
        failed: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._read, args=(loop, queue, started, failed), name="tidings-outbox-tail",
            daemon=True,
        )  # fmt: skip
        self._thread.start()
        await asyncio.to_thread(started.wait)
        if failed:
            raise failed[0]

    # the reader thread
    def _connect(self) -> Any:
        import psycopg2
        import psycopg2.extras

        conn = psycopg2.connect(
            libpq_dsn(self.engine), connection_factory=psycopg2.extras.LogicalReplicationConnection
        )
        cur = conn.cursor()
        cur.start_replication(
            slot_name=self.slot,
            decode=False,
            options={"proto_version": "1", "publication_names": self.publication},
            status_interval=self.feedback_interval,  # type: ignore[arg-type]  # stubs: int; a float works
        )
        return conn, cur

    def _read(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any],
              started: threading.Event, failed: list[BaseException]) -> None:  # fmt: skip
        try:
            conn, cur = self._connect()
        except BaseException as exc:
            failed.append(exc)
            started.set()
            return
        started.set()
        table = self.outbox.name
        decoder = Decoder()
        txn: list[Row] | None = None
        last_feedback = 0.0
        sent = 0
        try:
            while not self._stop.is_set():
                msg = cur.read_message()
                if msg is not None:
                    event = decoder.decode(msg.payload)
                    if isinstance(event, Insert):
                        if txn is not None and event.relation.name == table:
                            txn.append(_row(event.values))
                    elif isinstance(event, Begin):
                        txn = []
                    elif isinstance(event, Commit):
                        if txn:
                            self._pending.append((txn, event.end_lsn))
                            self._handed = event.end_lsn
                        txn = None
                    if sum(len(r) for r, _ in self._pending) < self.batch_size:
                        continue
                if self._pending:
                    batch, self._pending = self._pending, []
                    loop.call_soon_threadsafe(queue.put_nowait, batch)
                now = time.monotonic()
                if now - last_feedback >= self.feedback_interval / 2:
                    target = self._confirmed
                    if txn is None and not self._pending and target >= self._handed:
                        target = max(target, cur.wal_end)  # idle: do not pin WAL
                    if target > sent:
                        cur.send_feedback(write_lsn=target, flush_lsn=target, apply_lsn=target)
                        sent = target
                    else:
                        cur.send_feedback()
                    last_feedback = now
                if msg is None:
                    select.select([cur], [], [], 0.1)
        except BaseException as exc:
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    # what the relay calls
    async def next_batch(self) -> list[Row]:
        assert self._queue is not None
        item = await self._queue.get()
        items = [item]
        rows = 0
        while not self._queue.empty() and rows < self.batch_size:
            items.append(self._queue.get_nowait())
            if isinstance(items[-1], BaseException):
                break
            rows += sum(len(r) for r, _ in items[-1])
        out: list[Row] = []
        for batch in items:
            if isinstance(batch, BaseException):
                if out:  # publish what came before the error first
                    self._queue.put_nowait(batch)
                    break
                raise batch
            for txn_rows, end_lsn in batch:
                out.extend(txn_rows)
                self._batch_lsn = end_lsn
        return out

    async def confirm(self, rows: list[Row]) -> None:
        self._confirmed = max(self._confirmed, self._batch_lsn)

    async def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            thread, self._thread = self._thread, None
            await asyncio.to_thread(thread.join, 5)
        self._pending = []
