"""What ``tidings outbox status`` shows: the table's backlog, the relays, the slot's lag.

Every relay (active or standing by) upserts one row a few seconds apart in
``<table>_relays``: its holder (host:pid), mode, role, rows published, rows/s, duplicates the
broker absorbed, and its last error. On PostgreSQL in tail mode that row is also the
heartbeat write that keeps WAL moving past the slot on an idle database.
:func:`outbox_status` reads it back together with the backlog (unpublished rows, the oldest
one's age) and, for a replication slot, how many bytes of WAL it holds back (``lag_bytes``:
WAL not yet confirmed; ``retained_bytes``: WAL kept on disk for it).
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from .table import check_shape, default_slot

STALE = 15.0  # seconds: a relay that has not reported for this long is shown as gone


def relays_table(outbox_name: str, metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        f"{outbox_name}_relays",
        metadata,
        sa.Column("holder", sa.String(200), primary_key=True),
        sa.Column("mode", sa.String(10), nullable=False),
        sa.Column("role", sa.String(10), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("published", sa.BigInteger, nullable=False),
        sa.Column("duplicates", sa.BigInteger, nullable=False),
        sa.Column("rate", sa.Float, nullable=False),
        sa.Column("last_error", sa.Text),
    )


def report(engine: sa.Engine, table: sa.Table, values: dict[str, Any]) -> None:
    """Upsert one relay's row (update, insert when it is not there)."""
    with engine.begin() as conn:
        done = conn.execute(
            table.update().where(table.c.holder == values["holder"]).values(**values)
        ).rowcount
        if not done:
            conn.execute(table.insert().values(**values))


def slot_status(conn: sa.Connection, slot: str) -> dict[str, Any] | None:
    row = conn.execute(
        sa.text(
            "SELECT active, active_pid, confirmed_flush_lsn::text, wal_status, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint, safe_wal_size "
            "FROM pg_replication_slots WHERE slot_name = :s"
        ),
        {"s": slot},
    ).first()
    if row is None:
        return None
    return {
        "name": slot,
        "active": bool(row[0]),
        "active_pid": row[1],
        "confirmed_lsn": row[2],
        "wal_status": row[3],
        "lag_bytes": int(row[4] or 0),
        "retained_bytes": int(row[5] or 0),
        "safe_wal_size": row[6],
    }


def outbox_status(
    engine: sa.Engine, outbox_table: sa.Table, *, slot: str | None = None
) -> dict[str, Any]:
    """The outbox's backlog, its relays and (PostgreSQL) its slot, as plain data."""
    now = time.time()
    t = outbox_table
    with engine.connect() as conn:
        check_shape(conn, t.name)
        unpublished, oldest = conn.execute(
            sa.select(sa.func.count(), sa.func.min(t.c.created_at)).where(
                t.c.published_at.is_(None)
            )
        ).one()
        total = conn.execute(sa.select(sa.func.count()).select_from(t)).scalar()
        relays = []
        rt = relays_table(t.name, sa.MetaData())
        if sa.inspect(conn).has_table(rt.name):
            for row in conn.execute(sa.select(rt).order_by(rt.c.role, rt.c.holder)).mappings():
                entry = dict(row)
                entry["alive"] = now - entry["updated_at"] < STALE
                relays.append(entry)
        slot_info = None
        if conn.dialect.name == "postgresql":
            slot_info = slot_status(conn, slot or default_slot(t.name, engine.url.database))
    tailing = any(r["alive"] and r["mode"] == "tail" for r in relays)
    return {
        "table": t.name,
        "rows": total,
        # tail mode does not mark rows: its backlog is the slot's lag
        "unpublished": None if tailing else unpublished,
        "oldest_unpublished_age": None if tailing or oldest is None else now - oldest,
        "relays": relays,
        "slot": slot_info,
    }
