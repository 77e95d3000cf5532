"""The outbox table: its columns, its DDL, and the check that a database's table has them.

One row per message to publish. ``id`` is the write order (an autoincrement key); the relay
publishes rows of a topic in ``id`` order and stamps ``published_at`` once the broker
confirmed them; published rows are deleted after the retention period::

    CREATE TABLE tidings_outbox (
        id           BIGSERIAL PRIMARY KEY,      -- INTEGER PRIMARY KEY AUTOINCREMENT on SQLite
        msg_id       VARCHAR(200) NOT NULL,      -- the producer message id (broker dedup)
        topic        VARCHAR(200) NOT NULL,
        key          VARCHAR(400),
        headers      TEXT NOT NULL,              -- a JSON object of str -> str
        body         BYTEA NOT NULL,             -- BLOB on SQLite
        delay        DOUBLE PRECISION,           -- seconds after created_at; NULL: none
        created_at   DOUBLE PRECISION NOT NULL,  -- seconds since the epoch
        published_at DOUBLE PRECISION            -- NULL until the broker confirmed it
    );
    CREATE INDEX ix_tidings_outbox_unpublished ON tidings_outbox (published_at, id);

On PostgreSQL :meth:`Outbox.create_table` also adds a statement trigger that notifies the
channel named like the table, so a polling relay wakes at once (LISTEN/NOTIFY). See
docs/outbox.md for the full DDL to put in a migration.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..errors import BadRequest

COLUMNS = ("id", "msg_id", "topic", "key", "headers", "body", "delay", "created_at",
           "published_at")  # fmt: skip


def outbox_table(name: str, metadata: sa.MetaData | None = None) -> sa.Table:
    """The SQLAlchemy Table of an outbox called ``name``."""
    if not name.replace("_", "").isalnum() or not name[0].isalpha():
        raise BadRequest(
            f"invalid outbox table name {name!r}: use letters, digits and '_', "
            "starting with a letter"
        )
    md = metadata if metadata is not None else sa.MetaData()
    table = sa.Table(
        name,
        md,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("msg_id", sa.String(200), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("key", sa.String(400)),
        sa.Column("headers", sa.Text, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("delay", sa.Float),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("published_at", sa.Float),
        sqlite_autoincrement=True,
    )
    sa.Index(f"ix_{name}_unpublished", table.c.published_at, table.c.id)
    return table


def default_slot(table: str, database: str | None) -> str:
    """The replication slot's default name: slots are per cluster, so it names the database."""
    raw = f"{table}_{database or 'db'}".lower()
    return "".join(c if c.isalnum() or c == "_" else "_" for c in raw)[:63]


def notify_ddl(name: str) -> list[str]:
    """PostgreSQL: a statement trigger that notifies channel ``name`` on every insert."""
    return [
        f"CREATE OR REPLACE FUNCTION {name}_notify() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN PERFORM pg_notify('{name}', ''); RETURN NULL; END $$",
        f"DROP TRIGGER IF EXISTS {name}_notify ON {name}",
        f"CREATE TRIGGER {name}_notify AFTER INSERT ON {name} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {name}_notify()",
    ]


def has_notify_trigger(conn: sa.Connection, name: str) -> bool:
    """PostgreSQL: whether table ``name`` has the trigger of :func:`notify_ddl` already.

    Asked before the DDL runs: ``DROP TRIGGER`` takes an ACCESS EXCLUSIVE lock on the table,
    so every process start re-creating it waited for the open transactions that had written
    rows, and every insert queued behind it. A service whose handlings run their statements on
    the event loop then stalled whole: one handling waiting in the queue blocked the loop that
    the others needed to commit (until their lock timeouts)."""
    query = sa.text(
        "SELECT 1 FROM pg_trigger WHERE tgname = :trigger AND tgrelid = to_regclass(:table)"
    )
    return conn.execute(query, {"trigger": f"{name}_notify", "table": name}).first() is not None


def check_shape(conn: sa.Connection, name: str) -> None:
    """Raise BadRequest naming the fix if table ``name`` is missing or lacks columns."""
    inspector = sa.inspect(conn)
    if not inspector.has_table(name):
        raise BadRequest(
            f"the outbox table {name!r} does not exist in {conn.engine.url.database!r}: "
            "create it with Outbox(...).create_table() or the DDL in docs/outbox.md"
        )
    have = {col["name"] for col in inspector.get_columns(name)}
    missing = [c for c in COLUMNS if c not in have]
    if missing:
        raise BadRequest(
            f"the table {name!r} is not an outbox table: it lacks the columns "
            f"{', '.join(missing)}; use the DDL in docs/outbox.md or another table name"
        )


__all__ = [
    "COLUMNS", "check_shape", "default_slot", "has_notify_trigger", "notify_ddl", "outbox_table",
]  # fmt: skip
