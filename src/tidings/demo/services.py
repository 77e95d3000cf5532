"""The demo's consumers: inventory, payment (any number of workers) and notification.

Each is a plain :class:`tidings.Service` with one idempotent handler in its own group on
``order.refunded`` (so each gets every event) and a simulated cost per event (``pace``) so the
three drain the burst at different speeds. The handler's effect is a row in the service's
``effects`` table, written in the same SQLite transaction that records the message id: a
refund is refunded once in effect even when its event arrives twice. Payment also answers
``payment.status`` requests.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from ..service import Backoff, Context, IdempotencyStore, Service
from .models import REFUNDED, STATUS, OrderRefunded, RefundStatus, RefundStatusQuery

EFFECTS_DDL = (
    "CREATE TABLE IF NOT EXISTS effects ("
    "order_id TEXT NOT NULL, worker TEXT NOT NULL, message_id TEXT NOT NULL, amount REAL)"
)
INSERT = sa.text(
    "INSERT INTO effects (order_id, worker, message_id, amount) VALUES (:o, :w, :m, :a)"
)


@dataclass(frozen=True)
class Pace:
    """How fast a consumer works: ``concurrency`` handlers at once, ``cost`` seconds each."""

    concurrency: int
    cost: float


def engine_for(db_url: str) -> sa.Engine:
    """A SQLite engine for one service: WAL, and a pool larger than its handler concurrency
    (each idempotent handling holds a connection for its whole run)."""
    engine = sa.create_engine(
        db_url, pool_size=64, max_overflow=0, pool_timeout=60,
        connect_args={"check_same_thread": False, "timeout": 30},
    )  # fmt: skip

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def database(directory: Path, service: str) -> str:
    """The SQLite URL of a service's database (idempotency records and effects)."""
    url = f"sqlite:///{directory / f'{service}.sqlite3'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        conn.exec_driver_sql(EFFECTS_DDL)
    engine.dispose()
    return url


class EffectStore(IdempotencyStore):
    """Writes a handling's effect row in the same short transaction that records its message
    id. The handler only stages the row (``stage``): doing the SQLite write itself would hold
    the database's write lock across awaits, which stalls concurrent handlers."""

    def _commit_record(self, conn: sa.Connection, consumer: str, message_id: str) -> None:
        staged = conn.info.pop("tidings-demo-effect", None)
        if staged is not None and staged[0] == message_id:
            conn.execute(INSERT, staged[1])
        super()._commit_record(conn, consumer, message_id)


def stage(ctx: Context, row: dict[str, object]) -> None:
    """Stage ``row`` to be inserted when the handling commits (with its message id)."""
    assert ctx.transaction is not None, "stage() needs an idempotent handler"
    ctx.transaction.info["tidings-demo-effect"] = (ctx.message_id, row)


def consumer(
    name: str,
    url: str | None,
    db_url: str,
    pace: Pace,
    *,
    lease: float,
    worker: str | None = None,
    topic: str = REFUNDED,
    status_topic: str = STATUS,
) -> Service:
    """One consumer service (``name`` is its group); ``worker`` names this instance."""
    worker = worker or name
    svc = Service(
        name,
        url,
        # The effect row is written in the commit step, off the loop: no need to take turns.
        idempotency=EffectStore(engine=engine_for(db_url), cleanup_interval=3600, serialize=False),
        backoff=Backoff(initial=0.2, max_delay=2.0),
        grace_period=2.0,
        default_middleware=False,
    )

    @svc.on(topic, idempotent=True, concurrency=pace.concurrency, lease=lease, name=name)
    async def handle(event: OrderRefunded, ctx: Context) -> None:
        if pace.cost:
            await asyncio.sleep(pace.cost)  # the work: a stock update, a PSP call, an e-mail
        stage(ctx, {"o": event.order_id, "w": worker, "m": ctx.message_id, "a": event.amount})

    if name == "payment":
        engine = sa.create_engine(db_url, connect_args={"check_same_thread": False})

        @svc.reply(status_topic, lease=lease)
        async def status(query: RefundStatusQuery) -> RefundStatus:
            def look() -> tuple | None:
                with engine.connect() as conn:
                    sql = "SELECT amount, worker FROM effects WHERE order_id = :o LIMIT 1"
                    return conn.execute(sa.text(sql), {"o": query.order_id}).first()

            row = await asyncio.to_thread(look)
            if row is None:
                return RefundStatus(order_id=query.order_id, state="unknown")
            return RefundStatus(
                order_id=query.order_id, state="refunded", amount=row[0], worker=row[1]
            )

    return svc


def effects(db_url: str) -> tuple[int, int, dict[str, int]]:
    """(rows, distinct orders, rows per worker) of a service's effects table."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows, distinct = conn.execute(
                sa.text("SELECT COUNT(*), COUNT(DISTINCT order_id) FROM effects")
            ).one()
            per = conn.execute(sa.text("SELECT worker, COUNT(*) FROM effects GROUP BY worker"))
            return rows, distinct, {w: n for w, n in per}
    finally:
        engine.dispose()
