"""Transactions on the outbox's database: what ``tidings.Service(..., outbox=...)`` runs in.

With an outbox, every handling runs in one database transaction on the outbox's database
(``ctx.transaction``), and ``ctx.publish`` / ``ctx.send`` insert outbox rows through it instead
of publishing to the broker. The handler's own writes, its events and (for ``idempotent=True``
handlers) the processed-id record commit together or not at all; the relay moves the committed
rows to the broker::

    svc = tidings.Service("billing", outbox=Outbox(engine))

    @svc.on("order.placed", idempotent=True)
    async def bill(order: OrderPlaced, ctx: tidings.Context) -> None:
        ctx.transaction.execute(invoices.insert().values(order_id=order.id))
        await ctx.publish("invoice.created", InvoiceCreated(order_id=order.id))

Outside handlers, ``async with svc.transaction() as tx:`` opens the same kind of transaction
(``tx.connection`` for rows, ``await tx.publish(...)``), commits on a clean exit and rolls back
on an exception.

The service layer does not import :mod:`tidings.outbox` (it sits above the service): the
service sees the outbox through :class:`OutboxWriter`, which ``tidings.outbox.Outbox``
implements. Statements of a handler run on the event loop's thread, as ``ctx.transaction``'s
always did; on SQLite (one writer at a time) handlings take turns, see
:mod:`tidings.service.idempotency`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import BadRequest
from ..model import Outgoing
from .middleware import PublishCall

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from .publishing import Kind, Publishing


@runtime_checkable
class OutboxWriter(Protocol):
    """What a service needs of an outbox (``tidings.outbox.Outbox`` is one)."""

    name: str  # the table's name

    @property
    def sync_engine(self) -> Engine:
        """A sync SQLAlchemy engine on the outbox's database."""
        ...

    def write(self, connection: Any, topic: str, messages: Sequence[Outgoing]) -> list[str]:
        """Insert prepared messages through ``connection`` (in its transaction); msg_ids."""
        ...


def same_database(a: Engine, b: Engine) -> bool:
    """Whether two engines reach the same database (drivers aside)."""
    ua, ub = a.url, b.url
    return (ua.get_backend_name(), ua.host, ua.port, ua.database) == (
        ub.get_backend_name(), ub.host, ub.port, ub.database,
    )  # fmt: skip


def pool_capacity(engine: Engine) -> int | None:
    """How many connections ``engine``'s pool keeps open (None: no limit known).

    Not the overflow above ``pool_size``: the pool closes an overflow connection when it comes
    back, so a service whose handlings used overflow connections opened a new database
    connection for most handlings under load (on PostgreSQL a new backend, ~10 ms of the
    server's CPU each: half of PostgreSQL's CPU in the saga crash test)."""
    pool = engine.pool
    size, overflow = getattr(pool, "size", None), getattr(pool, "_max_overflow", None)
    if not callable(size) or not isinstance(overflow, int):
        return None
    return int(size()) if overflow >= 0 else None


class Transactions:
    """Opens transactions on the outbox's database, taking turns on SQLite."""

    def __init__(self, outbox: OutboxWriter) -> None:
        self.outbox = outbox
        engine = outbox.sync_engine
        if engine.dialect.name == "sqlite":
            # the statements run on the loop's thread, begin and commit in worker threads: an
            # engine whose connections may cross threads (on the same database file)
            from .idempotency import _make_engine

            engine = _make_engine(engine.url.render_as_string(hide_password=False))
            self._owns_engine = True
        else:
            self._owns_engine = False
        self.engine = engine
        sqlite = engine.dialect.name == "sqlite"
        self.turns: asyncio.Lock | None = asyncio.Lock() if sqlite else None
        # Elsewhere, at most as many open transactions as the pool keeps connections (less
        # two for the relay and readers on the same engine): a handling waiting for a pooled
        # connection would wait in a worker thread, and once every worker thread waited so,
        # the handlings holding the connections could never commit (their commits need a
        # worker thread too) until the pool's timeout; and overflow connections are closed on
        # return, so using them means connecting anew all the time (see pool_capacity). Give
        # the engine ``pool_size`` >= the concurrency of its handlers + 2.
        capacity = pool_capacity(engine)
        self.slots: asyncio.Semaphore | None = None
        if not sqlite and capacity is not None:
            self.slots = asyncio.Semaphore(max(1, capacity - 2))

    def _begin(self) -> Connection:
        conn = self.engine.connect()
        conn.begin()
        return conn

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[Connection]:
        """A connection in an open transaction: committed on a clean exit, else rolled back."""
        if self.turns is None:
            if self.slots is None:
                async with self._begin_now() as conn:
                    yield conn
                return
            async with self.slots, self._begin_now() as conn:
                yield conn
            return
        async with self.turns, self._begin_now() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def _begin_now(self) -> AsyncIterator[Connection]:
        conn = await asyncio.to_thread(self._begin)
        try:
            yield conn
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(asyncio.to_thread(end, conn, False))
            raise
        # commit and close in one worker-thread hop, not two (each is a thread wake-up and a
        # future on the loop); a cancelled handling lets it finish: the connection is in use
        await asyncio.shield(asyncio.to_thread(end, conn, True))

    def close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()


def end(conn: Connection, commit: bool) -> None:
    """Commit (or roll back) ``conn``'s transaction and close it, in one worker-thread hop."""
    try:
        if commit:
            conn.commit()
        else:
            conn.rollback()
    finally:
        conn.close()


class Transaction:
    """An open transaction on the outbox's database: ``connection`` (or :meth:`execute`) for
    your rows, :meth:`publish` / :meth:`send` for messages that go out only if it commits."""

    def __init__(self, service: Publishing, outbox: OutboxWriter, connection: Connection) -> None:
        self.service = service
        self.outbox = outbox
        self.connection = connection

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        """``connection.execute(...)``."""
        return self.connection.execute(statement, *args, **kwargs)

    async def publish(
        self,
        topic: str,
        payload: Any,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        msg_id: str | None = None,
        delay: float | None = None,
        kind: Kind = "event",
        ttl: float | None = None,
    ) -> str:
        """Write an event to the outbox in this transaction (encoded and passed through the
        publish middleware as ``Service.publish`` does); returns its msg_id."""
        if ttl is not None:
            raise BadRequest("the outbox does not carry a ttl: publish without ttl=")
        message = self.service._outgoing(payload, kind, key, headers, msg_id, None, delay)
        call = PublishCall(topic, message, kind, payload)

        async def endpoint(c: PublishCall) -> str:
            return self.outbox.write(self.connection, c.topic, [c.message])[0]

        row_id: str = await self.service._publish_through_chain(call, endpoint)
        return row_id

    async def publish_many(
        self,
        topic: str,
        payloads: Sequence[Any],
        *,
        keys: Sequence[str | None] | None = None,
        headers: dict[str, str] | None = None,
        kind: Kind = "event",
    ) -> list[str]:
        """Write several events to the outbox in this transaction; their msg_ids in order."""
        if keys is not None and len(keys) != len(payloads):
            raise BadRequest(f"{len(keys)} keys for {len(payloads)} payloads: give one key each")
        return [
            await self.publish(topic, p, key=keys[i] if keys else None, headers=headers, kind=kind)
            for i, p in enumerate(payloads)
        ]

    async def send(self, topic: str, payload: Any, **options: Any) -> str:
        """Write a command to the outbox in this transaction."""
        return await self.publish(topic, payload, kind="command", **options)
