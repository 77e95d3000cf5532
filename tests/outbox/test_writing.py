"""Writing to the outbox through the caller's own transaction, on SQLite and PostgreSQL, sync
and async: a committed row holds the encoded message with a Snowflake msg_id; a rolled-back
transaction leaves nothing; bad input (a codec-rejected payload, a bad topic, an engine
instead of a connection, a missing or wrong-shaped table) gets a clear error."""

from __future__ import annotations

import time

import msgspec
import pytest
import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import Session

from tidings.errors import BadRequest
from tidings.ids import Snowflake
from tidings.outbox import Outbox


class OrderPlaced(BaseModel):
    order_id: str
    cents: int


def rows(engine: sa.Engine, table: str = "tidings_outbox") -> list[dict]:
    with engine.connect() as conn:
        result = conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY id"))
        return [dict(r) for r in result.mappings()]


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path) -> sa.Engine:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'app.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    eng = sa.create_engine(url)
    yield eng
    eng.dispose()


def test_committed_rows_hold_encoded_messages(engine: sa.Engine) -> None:
    outbox = Outbox(engine)
    outbox.create_table()
    outbox.create_table()  # twice is fine
    with engine.begin() as conn:
        one = outbox.publish(conn, "orders", OrderPlaced(order_id="o-1", cents=250), key="o-1")
        many = outbox.publish_many(conn, "orders", [{"n": 1}, b"\x00raw"], keys=["a", None])
        given = outbox.publish(conn, "orders", {"n": 2}, msg_id="mine-1", delay=5,
                               headers={"x-a": "b"}, kind="command")  # fmt: skip
    stored = rows(engine)
    assert [r["msg_id"] for r in stored] == [one, *many, "mine-1"]
    assert given == "mine-1"
    assert abs(Snowflake.parse(one).timestamp - time.time()) < 60  # a Snowflake id
    first = stored[0]
    assert first["topic"] == "orders" and first["key"] == "o-1"
    assert msgspec.json.decode(bytes(first["body"])) == {"order_id": "o-1", "cents": 250}
    headers = msgspec.json.decode(first["headers"])
    assert headers == {"content-type": "application/json", "tidings-type": "event"}
    assert bytes(stored[2]["body"]) == b"\x00raw"
    assert msgspec.json.decode(stored[2]["headers"])["content-type"] == "application/octet-stream"
    assert stored[3]["delay"] == 5 and msgspec.json.decode(stored[3]["headers"])["x-a"] == "b"
    assert msgspec.json.decode(stored[3]["headers"])["tidings-type"] == "command"
    assert all(r["published_at"] is None for r in stored)


def test_rolled_back_transaction_leaves_nothing(engine: sa.Engine) -> None:
    outbox = Outbox(engine)
    outbox.create_table()
    with pytest.raises(RuntimeError), engine.begin() as conn:
        outbox.publish(conn, "orders", {"n": 1})
        raise RuntimeError("the business update failed")
    with Session(engine) as session, session.begin():  # a Session works too
        outbox.publish(session, "orders", {"n": 2})
        session.rollback()
    assert rows(engine) == []


def test_bad_input_is_refused_clearly(engine: sa.Engine) -> None:
    outbox = Outbox(engine)
    with engine.begin() as conn, pytest.raises(BadRequest, match="does not exist"):
        outbox.check_table(conn)
    outbox.create_table()
    with engine.begin() as conn:
        with pytest.raises(BadRequest, match="cannot serialize a object payload"):
            outbox.publish(conn, "orders", object())
        with pytest.raises(BadRequest, match="topic"):
            outbox.publish(conn, "bad topic!", {"n": 1})
        with pytest.raises(BadRequest, match="one key each"):
            outbox.publish_many(conn, "orders", [1, 2], keys=["a"])
    with pytest.raises(BadRequest, match="Connection or Session"):
        outbox.publish(engine, "orders", {"n": 1})
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE not_an_outbox (id INTEGER PRIMARY KEY, topic TEXT)")
        with pytest.raises(BadRequest, match="lacks the columns msg_id"):
            Outbox(engine, table="not_an_outbox").check_table(conn)
    with pytest.raises(BadRequest, match="invalid outbox table name"):
        Outbox(engine, table="x; drop table y")


async def test_async_engines_write_through_their_transaction(request, tmp_path) -> None:
    pg = request.getfixturevalue("pg_url").replace("+psycopg2", "+psycopg")
    for url in (f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", pg):
        engine = create_async_engine(url)
        outbox = Outbox(engine)
        await outbox.create_table()
        async with engine.begin() as conn:
            msg_id = await outbox.publish(conn, "orders", OrderPlaced(order_id="o", cents=1))
            ids = await outbox.publish_many(conn, "orders", [{"n": 1}, {"n": 2}])
        try:
            async with engine.begin() as conn:
                await outbox.publish(conn, "orders", {"n": 3})
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        stored = rows(outbox.sync_engine)
        assert [r["msg_id"] for r in stored] == [msg_id, *ids], url
        await engine.dispose()
        outbox.sync_engine.dispose()
