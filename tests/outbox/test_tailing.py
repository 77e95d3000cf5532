"""The log-tailing relay on a real PostgreSQL (wal_level=logical): committed inserts arrive once
in order, rolled-back ones never; rows written before the slot existed are backfilled; the
slot's position is confirmed only after the broker confirmed; an idle outbox does not pin WAL
while another table is written; bad setups (no wal_level=logical, a foreign slot, SQLite) are
refused with the fix."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from tests.helpers.postgres import PostgresServer

from tidings.errors import BadRequest
from tidings.outbox import Outbox, Relay, outbox_status

from .conftest import drain
from .test_polling import wait_for

pytestmark = pytest.mark.timeout(180)


def slot(engine: sa.Engine) -> dict:
    outbox = Outbox(engine)
    return outbox_status(engine, outbox.table)["slot"]


async def test_tail_relays_committed_inserts(pg_url: str, topic: str, broker) -> None:
    engine = sa.create_engine(pg_url)
    outbox = Outbox(engine)
    outbox.create_table()
    with engine.begin() as conn:  # before the slot exists: the first start backfills it
        before = outbox.publish_many(conn, topic, [{"n": i} for i in range(5)])
    relay = Relay(outbox, broker.url, mode="tail")
    async with relay.running():
        await wait_for(lambda: relay.published >= 5, what="backfill")
        with engine.begin() as conn:
            after = outbox.publish_many(conn, topic, [{"n": i} for i in range(5, 1005)],
                                        keys=[f"k{i % 7}" for i in range(1000)])  # fmt: skip
        with pytest.raises(RuntimeError), engine.begin() as conn:
            outbox.publish(conn, topic, {"n": "rolled back"})
            raise RuntimeError("abort")
        with engine.begin() as conn:
            last = outbox.publish(conn, topic, {"n": "last"})
        got = await drain(broker.url, topic, 1006)
        await wait_for(lambda: slot(engine)["lag_bytes"] < 64 * 1024, what="slot confirmed")
    ids = [m.msg_id for m in got]
    assert ids == [*before, *after, last]
    info = slot(engine)
    assert info["active"] is False and info["confirmed_lsn"]
    engine.dispose()


async def test_idle_outbox_does_not_pin_wal(pg_url: str, topic: str) -> None:
    engine = sa.create_engine(pg_url)
    outbox = Outbox(engine)
    outbox.create_table()
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE other (id serial primary key, pad text)")
    relay = Relay(outbox, "memory://idle", mode="tail", report_interval=0.5)
    async with relay.running():
        await wait_for(lambda: relay.role == "active" and slot(engine) is not None, what="slot")
        with engine.connect() as conn:
            start = conn.exec_driver_sql("SELECT pg_current_wal_lsn()::text").scalar()
        for _ in range(20):  # ~16 MB of WAL on another table
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    "INSERT INTO other (pad) SELECT repeat('x', 800) FROM generate_series(1, 2000)"
                )
        with engine.connect() as conn:
            written = conn.exec_driver_sql(
                f"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{start}')::bigint"
            ).scalar()
        assert written > 4 * 1024 * 1024
        await wait_for(lambda: slot(engine)["lag_bytes"] < 1024 * 1024, timeout=30,
                       what="the slot to follow WAL written to another table")  # fmt: skip
    engine.dispose()


async def test_bad_setups_are_refused(pg_url: str, sqlite_url: str) -> None:
    with pytest.raises(BadRequest, match="--mode poll"):
        Relay(Outbox(sa.create_engine(sqlite_url)), "memory://x", mode="tail")
    engine = sa.create_engine(pg_url)
    outbox = Outbox(engine)
    with pytest.raises(BadRequest, match="does not exist"):
        await Relay(outbox, "memory://x", mode="tail").run()
    outbox.create_table()
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "SELECT pg_create_logical_replication_slot('foreign', 'test_decoding')"
        )
    relay = Relay(outbox, "memory://x", mode="tail", slot="foreign")
    with pytest.raises(BadRequest, match="belongs to someone else"):
        await asyncio.wait_for(relay.run(), 30)
    with engine.begin() as conn:
        conn.exec_driver_sql("SELECT pg_drop_replication_slot('foreign')")
    engine.dispose()


async def test_without_logical_wal_level_tail_is_refused() -> None:
    with PostgresServer(settings={"wal_level": "replica"}) as pg:
        engine = sa.create_engine(pg.create_database("plain"))
        outbox = Outbox(engine)
        outbox.create_table()
        with pytest.raises(BadRequest, match="wal_level = logical"):
            await asyncio.wait_for(Relay(outbox, "memory://x", mode="tail").run(), 30)
        engine.dispose()
