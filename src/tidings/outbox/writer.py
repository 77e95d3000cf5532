"""Writing to the outbox: rows inserted through the caller's own transaction.

    outbox = Outbox(engine)                       # a sync Engine or an AsyncEngine
    with engine.begin() as conn:
        conn.execute(orders.insert().values(...))
        outbox.publish(conn, "order.placed", OrderPlaced(...), key="order-1")
    # async: await outbox.publish(async_conn_or_session, ...)

Payloads go through the same codecs as ``Service.publish`` (pydantic models, dataclasses,
plain data; ``bytes`` as they are), with the same ``content-type`` and ``tidings-type``
headers, and every row gets a ``msg_id`` (a Snowflake id unless given) that the relay publishes
with, so the broker's dedup absorbs a re-send after a relay crash. Nothing reaches the broker
unless the transaction commits. ``publish`` returns the msg_id (a list for ``publish_many``);
with an async connection or session, it returns an awaitable of it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec
import sqlalchemy as sa

from .. import headers as h
from ..errors import BadRequest
from ..ids import Snowflake, default_snowflake
from ..model import Outgoing
from ..names import validate_name
from ..service.codecs import Codec, codec_named
from ..service.payloads import encode_payload
from .table import check_shape, has_notify_trigger, notify_ddl, outbox_table

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

DEFAULT_TABLE = "tidings_outbox"


def _is_async(obj: Any) -> bool:
    """An AsyncEngine, AsyncConnection or AsyncSession (without importing SQLAlchemy's asyncio
    extension, which needs greenlet: sync users need not install it)."""
    return type(obj).__module__.startswith("sqlalchemy.ext.asyncio")


class Outbox:
    """An outbox table on one database (SQLAlchemy, sync or async engine)."""

    def __init__(
        self,
        engine: sa.Engine | AsyncEngine | str,
        table: str = DEFAULT_TABLE,
        *,
        codec: str | Codec = "json",
        worker_id: int | None = None,
    ) -> None:
        if isinstance(engine, str):
            engine = sa.create_engine(engine)
        if not isinstance(engine, sa.Engine) and not _is_async(engine):
            raise BadRequest(
                f"Outbox needs a SQLAlchemy Engine, AsyncEngine or URL, got {type(engine).__name__}"
            )
        self.engine = engine
        self.name = table
        self.metadata = sa.MetaData()
        self.table = outbox_table(table, self.metadata)
        self.codec = codec_named(codec)
        self.ids: Snowflake = Snowflake(worker_id) if worker_id is not None else default_snowflake()
        self._insert = self.table.insert()
        self._sync: sa.Engine | None = None

    @property
    def is_async(self) -> bool:
        return _is_async(self.engine)

    @property
    def sync_engine(self) -> sa.Engine:
        """The engine for the relay's own work: a sync engine on the same database (an async
        engine's URL with its sync driver: psycopg2 for PostgreSQL, sqlite3 for SQLite)."""
        if isinstance(self.engine, sa.Engine):
            return self.engine
        if self._sync is None:
            self._sync = sa.create_engine(sync_url(self.engine.url))
        return self._sync

    # the table
    def _create(self, conn: sa.Connection) -> None:
        self.metadata.create_all(conn)
        if conn.dialect.name == "postgresql" and not has_notify_trigger(conn, self.name):
            for statement in notify_ddl(self.name):
                conn.exec_driver_sql(statement)

    def create_table(self) -> Any:
        """Create the table (and its index, and on PostgreSQL its notify trigger) if missing.
        Returns an awaitable with an async engine."""
        engine = self.engine
        if not isinstance(engine, sa.Engine):  # an AsyncEngine (__init__ allows no other)
            return self._create_async(engine)
        with engine.begin() as conn:
            self._create(conn)
        return None

    async def _create_async(self, engine: AsyncEngine) -> None:
        async with engine.begin() as conn:
            await conn.run_sync(self._create)

    def check_table(self, conn: sa.Connection) -> None:
        """Raise BadRequest if the table is missing or has the wrong shape."""
        check_shape(conn, self.name)

    # rows
    def message(
        self,
        payload: Any,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        msg_id: str | None = None,
        delay: float | None = None,
        kind: str = "event",
    ) -> Outgoing:
        """The message a payload becomes (encoded as ``Service.publish`` would)."""
        body, content_type = encode_payload(payload, self.codec)
        out = {h.CONTENT_TYPE: content_type, h.MESSAGE_TYPE: kind, **(headers or {})}
        return Outgoing(body, key, out, msg_id or self.ids.next_str(), None, delay or None)

    def rows(self, topic: str, messages: Sequence[Outgoing]) -> list[dict[str, Any]]:
        validate_name("topic", topic)
        now = time.time()
        rows = []
        for m in messages:
            if m.delay is not None and m.delay < 0:
                raise BadRequest(f"delay must be >= 0 seconds, got {m.delay!r}")
            if m.ttl is not None:
                raise BadRequest("the outbox does not carry a ttl: publish without ttl=")
            rows.append(
                {
                    "msg_id": m.msg_id or self.ids.next_str(),
                    "topic": topic,
                    "key": m.key,
                    "headers": msgspec.json.encode(m.headers).decode(),
                    "body": m.body,
                    "delay": m.delay,
                    "created_at": now,
                    "published_at": None,
                }
            )
        return rows

    def write(self, connection: Any, topic: str, messages: Sequence[Outgoing]) -> list[str]:
        """Insert prepared messages through a sync ``Connection`` or ``Session`` (what
        ``tidings.Service(outbox=...)`` calls inside a handler's transaction)."""
        rows = self.rows(topic, messages)
        if rows:
            connection.execute(self._insert, rows)
        return [r["msg_id"] for r in rows]

    async def write_async(
        self, connection: Any, topic: str, messages: Sequence[Outgoing]
    ) -> list[str]:
        rows = self.rows(topic, messages)
        if rows:
            await connection.execute(self._insert, rows)
        return [r["msg_id"] for r in rows]

    def _insert_messages(self, connection: Any, topic: str, messages: list[Outgoing]) -> Any:
        if isinstance(connection, sa.Engine) or type(connection).__name__ == "AsyncEngine":
            raise BadRequest(
                "publish to the outbox through a Connection or Session inside your transaction "
                "(engine.begin() / Session.begin()), not through the Engine"
            )
        if _is_async(connection):
            return self.write_async(connection, topic, messages)
        return self.write(connection, topic, messages)

    def publish(
        self,
        connection: Any,
        topic: str,
        payload: Any,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        msg_id: str | None = None,
        delay: float | None = None,
        kind: str = "event",
    ) -> str | Awaitable[str]:
        """Insert one message into the outbox in ``connection``'s transaction; its msg_id
        (awaitable with an ``AsyncConnection`` / ``AsyncSession``)."""
        message = self.message(payload, key=key, headers=headers, msg_id=msg_id, delay=delay,
                               kind=kind)  # fmt: skip
        result = self._insert_messages(connection, topic, [message])
        if isinstance(result, list):
            first: str = result[0]
            return first
        return _first(result)

    def publish_many(
        self,
        connection: Any,
        topic: str,
        payloads: Sequence[Any],
        *,
        keys: Sequence[str | None] | None = None,
        headers: dict[str, str] | None = None,
        kind: str = "event",
    ) -> list[str] | Awaitable[list[str]]:
        """Insert several messages in one statement; their msg_ids in order."""
        if keys is not None and len(keys) != len(payloads):
            raise BadRequest(f"{len(keys)} keys for {len(payloads)} payloads: give one key each")
        messages = [
            self.message(p, key=keys[i] if keys else None, headers=headers, kind=kind)
            for i, p in enumerate(payloads)
        ]
        ids: list[str] | Awaitable[list[str]] = self._insert_messages(connection, topic, messages)
        return ids

    def __repr__(self) -> str:
        return f"Outbox({self.sync_engine.url.render_as_string()!r}, table={self.name!r})"


def sync_url(url: sa.URL) -> sa.URL:
    """The same database through a sync driver."""
    backend = url.get_backend_name()
    if backend == "postgresql":
        return url.set(drivername="postgresql+psycopg2")
    if backend == "sqlite":
        return url.set(drivername="sqlite")
    return url.set(drivername=backend)


async def _first(ids: Awaitable[list[str]]) -> str:
    return (await ids)[0]
