"""The polling relay: committed rows reach the broker once each in write order, with their
msg_ids and headers; a rolled-back transaction publishes nothing; a row of a transaction that
commits after a higher id was already published is not skipped (the late-commit overlap);
it runs on SQLite and PostgreSQL (woken by LISTEN/NOTIFY), to memory://, tidings:// and
nats://; a broker outage is retried until the broker is back; published rows are cleaned up
after the retention."""

from __future__ import annotations

import asyncio
import threading

import pytest
import sqlalchemy as sa

from tidings.outbox import Outbox, Relay, outbox_status

from .conftest import drain

pytestmark = pytest.mark.timeout(180)


async def wait_for(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await asyncio.to_thread(predicate):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def unpublished(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql(
            "SELECT count(*) FROM tidings_outbox WHERE published_at IS NULL"
        ).scalar()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, sqlite_url) -> str:
    return sqlite_url if request.param == "sqlite" else request.getfixturevalue("pg_url")


async def test_committed_rows_arrive_once_in_order(db_url: str, topic: str, broker) -> None:
    engine = sa.create_engine(db_url)
    outbox = Outbox(engine)
    outbox.create_table()
    with engine.begin() as conn:
        ids = outbox.publish_many(conn, topic, [{"n": i} for i in range(300)],
                                  keys=[f"k{i % 5}" for i in range(300)])  # fmt: skip
    with pytest.raises(RuntimeError), engine.begin() as conn:
        outbox.publish(conn, topic, {"n": "rolled back"})
        raise RuntimeError("abort")
    relay = Relay(outbox, broker.url, batch_size=64)
    async with relay.running():
        await wait_for(lambda: unpublished(engine) == 0, what="rows marked")
        with engine.begin() as conn:  # written while the relay runs (notify / adaptive poll)
            late = outbox.publish(conn, topic, {"n": 300}, key="k0")
        got = await drain(broker.url, topic, 301)
    status = outbox_status(engine, outbox.table)  # the relay reported once more at its stop
    assert [m.msg_id for m in got] == [*ids, late]
    assert [m.body for m in got][:2] == [b'{"n":0}', b'{"n":1}']
    assert got[0].key == "k0" and got[0].headers["content-type"] == "application/json"
    assert status["unpublished"] == 0 and status["rows"] == 301
    assert status["relays"][0]["published"] >= 300
    engine.dispose()


async def test_late_commit_is_not_skipped(pg_url: str, topic: str, broker) -> None:
    """T1 takes id 1 and commits only after T2 (id 2) was published: 1 still goes out."""
    engine = sa.create_engine(pg_url)
    outbox = Outbox(engine)
    outbox.create_table()
    t1 = engine.connect()
    t1.begin()
    early_id = outbox.publish(t1, topic, {"n": "early id, late commit"})
    with engine.begin() as t2:
        later_id = outbox.publish(t2, topic, {"n": "later id, early commit"})
    relay = Relay(outbox, broker.url, max_interval=0.2)
    async with relay.running():
        first = await drain(broker.url, topic, 1)
        assert [m.msg_id for m in first] == [later_id]
        with engine.connect() as conn:
            ids = conn.exec_driver_sql("SELECT id FROM tidings_outbox ORDER BY id").scalars().all()
        assert ids == [2]  # T1's row (id 1) is not visible yet
        t1.commit()
        t1.close()
        await wait_for(lambda: unpublished(engine) == 0, what="the late row")
        got = await drain(broker.url, topic, 2)
    assert sorted(m.msg_id for m in got) == sorted([early_id, later_id])
    assert len(got) == 2
    engine.dispose()


@pytest.mark.parametrize("transport", ["memory", "nats"])
async def test_relays_to_memory_and_nats(transport, sqlite_url, topic, request) -> None:
    url = "memory://outbox-test" if transport == "memory" else request.getfixturevalue("nats_url")
    engine = sa.create_engine(sqlite_url)
    outbox = Outbox(engine)
    outbox.create_table()
    with engine.begin() as conn:
        ids = outbox.publish_many(conn, topic, [{"n": i} for i in range(50)], keys=["k"] * 50)
    async with Relay(outbox, url).running():
        await wait_for(lambda: unpublished(engine) == 0, what="rows marked")
        got = await drain(url, topic, 50)
    assert [m.msg_id for m in got] == ids
    engine.dispose()


async def test_broker_outage_is_retried(sqlite_url, topic, tmp_path) -> None:
    from tests.helpers.broker_process import BrokerProcess

    broker = BrokerProcess(tmp_path / "b").start()
    engine = sa.create_engine(sqlite_url)
    outbox = Outbox(engine)
    outbox.create_table()
    relay = Relay(outbox, broker.url, max_backoff=0.5,
                  client_options={"reconnect_timeout": 1, "timeout": 2})  # fmt: skip
    try:
        async with relay.running():
            with engine.begin() as conn:
                first = outbox.publish_many(conn, topic, [{"n": i} for i in range(10)])
            await wait_for(lambda: unpublished(engine) == 0, what="first rows")
            broker.stop()
            with engine.begin() as conn:
                second = outbox.publish_many(conn, topic, [{"n": i} for i in range(10, 20)])
            await wait_for(lambda: relay.last_error is not None, what="the outage noticed")
            assert unpublished(engine) == 10  # nothing marked while the broker is away
            broker.start()
            await wait_for(lambda: unpublished(engine) == 0, timeout=60, what="rows after outage")
            got = await drain(broker.url, topic, 20)
        assert [m.msg_id for m in got] == first + second
    finally:
        broker.stop()
        engine.dispose()


async def test_published_rows_are_cleaned_up_after_retention(sqlite_url, topic) -> None:
    engine = sa.create_engine(sqlite_url)
    outbox = Outbox(engine)
    outbox.create_table()
    with engine.begin() as conn:
        outbox.publish_many(conn, topic, [{"n": i} for i in range(20)])
    relay = Relay(outbox, "memory://cleanup", retention=0.2, cleanup_interval=0.2)
    async with relay.running():

        def empty() -> bool:
            with engine.connect() as conn:
                return conn.exec_driver_sql("SELECT count(*) FROM tidings_outbox").scalar() == 0

        await wait_for(empty, what="cleanup")
    engine.dispose()


def test_sqlite_relay_waits_for_a_lock_holder(sqlite_url) -> None:
    """A second relay on the same SQLite outbox stands by (flock) while the first runs."""
    engine = sa.create_engine(sqlite_url)
    outbox = Outbox(engine)
    outbox.create_table()
    states: list[str] = []

    async def scenario() -> None:
        a = Relay(outbox, "memory://lock")
        b = Relay(outbox, "memory://lock")
        async with a.running():
            await wait_for(lambda: a.role == "active", what="a active")
            async with b.running():
                await asyncio.sleep(1.0)
                states.append(b.role)
            states.append(a.role)

    threading.Thread(target=asyncio.run, args=(scenario(),)).start()
    import time

    deadline = time.monotonic() + 30
    while len(states) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert states == ["standby", "active"]
    engine.dispose()


async def test_the_listen_connection_never_returns_to_the_pool(pg_url: str, topic: str, broker):
    """The LISTEN session (autocommit, subscribed) is the relay's own: after the relay stops,
    every pooled connection is an ordinary one, and a query on it is answered (the relay's
    waiting thread once read a pooled connection's results off its socket: a hang)."""
    engine = sa.create_engine(pg_url, pool_size=2)
    outbox = Outbox(engine)
    outbox.create_table()
    for _ in range(3):
        relay = Relay(outbox, broker.url, max_interval=5.0)
        async with relay.running():
            await asyncio.sleep(0.3)  # idle: the relay waits for a NOTIFY in its thread
    conns = [engine.connect() for _ in range(2)]
    try:
        for conn in conns:
            listening = await asyncio.wait_for(
                asyncio.to_thread(
                    lambda c=conn: c.exec_driver_sql("SELECT pg_listening_channels()").all()
                ),
                10,
            )
            assert listening == []
            assert conn.connection.driver_connection.autocommit is False
    finally:
        for conn in conns:
            conn.close()
        engine.dispose()


async def test_an_idle_relay_on_postgresql_waits_for_notify_without_errors(
    pg_url: str, topic: str, broker, caplog
):
    """Idle, the relay waits on its LISTEN session: no error, and a commit wakes it well
    before the safety-net poll (max_interval 30 s). The wait once failed at every idle moment
    (a detached pool proxy has no driver_connection): the relay logged a warning, slept
    0.1-0.2 s and started over, so every row waited that long (~130 ms a saga step)."""
    caplog.set_level("INFO", logger="tidings.outbox")
    engine = sa.create_engine(pg_url)
    outbox = Outbox(engine)
    outbox.create_table()
    relay = Relay(outbox, broker.url, max_interval=30.0)
    async with relay.running():
        await wait_for(lambda: relay.role == "active", what="the relay active")
        for n in range(5):
            await asyncio.sleep(0.3)  # idle: the relay waits for a NOTIFY
            with engine.begin() as conn:
                outbox.publish(conn, topic, {"n": n})
            await wait_for(lambda: unpublished(engine) == 0, timeout=10, what="the row published")
        assert relay.last_error is None
    assert relay.published == 5
    assert "outbox relay: " not in "".join(r.getMessage() for r in caplog.records
                                           if r.levelname == "WARNING")  # fmt: skip
    engine.dispose()


def test_creating_the_table_again_waits_for_no_writer(pg_url: str) -> None:
    """A process start re-running create_table on PostgreSQL takes no lock that an open
    transaction holding outbox rows would make it wait for (its trigger is left as it is):
    the DDL on an existing table waited for every such transaction and queued every insert
    behind it."""
    outbox = Outbox(sa.create_engine(pg_url))
    outbox.create_table()
    impatient = Outbox(sa.create_engine(pg_url, connect_args={"options": "-c lock_timeout=500"}))
    with outbox.engine.connect() as writer:
        writer.begin()
        outbox.publish(writer, "t.created", {"n": 1})  # uncommitted: holds ROW EXCLUSIVE
        impatient.create_table()  # raised "lock timeout" when it dropped the trigger again
        writer.commit()
    with outbox.engine.connect() as conn:
        triggers = conn.exec_driver_sql(
            "SELECT count(*) FROM pg_trigger WHERE tgname = 'tidings_outbox_notify'"
        ).scalar()
    assert triggers == 1
    impatient.engine.dispose()
    outbox.engine.dispose()
