"""tidings.Service(..., outbox=...): a handler's ctx.publish writes to the outbox in the
handler's transaction. A handling that raises after ctx.publish leaves no row (nothing is
published), one that commits is relayed exactly once; svc.transaction() does the same outside
handlers; and the chain consume -> update rows -> emit, with the processed-id record in the
same transaction, gives each effect exactly once under a SIGKILLed worker."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

import tidings
from tidings import AsyncClient
from tidings.errors import BadRequest
from tidings.model import Outgoing
from tidings.outbox import Outbox, Relay

from .conftest import drain

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parents[2]


def count(engine: sa.Engine, sql: str) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql(sql).scalar()


async def wait_for(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await asyncio.to_thread(predicate):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, sqlite_url) -> str:
    return sqlite_url if request.param == "sqlite" else request.getfixturevalue("pg_url")


async def test_handler_publishes_only_when_its_transaction_commits(db_url, topic, broker):
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE effects (n INTEGER NOT NULL)")
    outbox = Outbox(engine)
    outbox.create_table()
    svc = tidings.Service(f"svc-{secrets.token_hex(3)}", broker.url, outbox=outbox,
                          register=False, backoff=tidings.Backoff(initial=0.05))  # fmt: skip
    attempts: list[int] = []
    done = asyncio.Event()

    @svc.on(topic, idempotent=True)
    async def handle(event: dict, ctx: tidings.Context) -> None:
        attempts.append(ctx.attempt)
        ctx.transaction.execute(sa.text("INSERT INTO effects (n) VALUES (:n)"), {"n": event["n"]})
        msg_id = await ctx.publish(f"{topic}.out", {"n": event["n"], "attempt": ctx.attempt})
        assert isinstance(msg_id, str)
        if ctx.attempt == 1:
            raise RuntimeError("fails after ctx.publish: the row and the event roll back")
        done.set()

    async with svc.running(), AsyncClient(broker.url) as client:
        await client.publish(topic, b'{"n": 7}', msg_id="order-7")
        await asyncio.wait_for(done.wait(), 30)
        await asyncio.sleep(0.2)  # the guard commits after the handler returned
    assert attempts == [1, 2]
    assert count(engine, "SELECT count(*) FROM effects") == 1
    assert count(engine, "SELECT count(*) FROM tidings_outbox") == 1
    assert count(engine, "SELECT count(*) FROM tidings_processed") == 1  # same database
    async with Relay(outbox, broker.url).running():
        got = await drain(broker.url, f"{topic}.out", 1, settle=1.0)
    assert [m.body for m in got] == [b'{"n":7,"attempt":2}']
    assert got[0].headers["tidings-type"] == "event"
    engine.dispose()


async def test_plain_handlers_and_svc_transaction_write_through_the_outbox(sqlite_url, topic):
    engine = sa.create_engine(sqlite_url)
    outbox = Outbox(engine)
    outbox.create_table()
    svc = tidings.Service("plain", "memory://", outbox=outbox, register=False)
    handled = asyncio.Event()

    @svc.on(topic)  # not idempotent: still one transaction per handling
    async def handle(event: dict, ctx: tidings.Context) -> None:
        await ctx.send(f"{topic}.cmd", {"from": event["n"]}, key="k")
        handled.set()

    async with svc.transaction() as tx:
        await tx.publish(topic, {"n": 1})
    with pytest.raises(RuntimeError):
        async with svc.transaction() as tx:
            await tx.publish(topic, {"n": "rolled back"})
            raise RuntimeError("abort")
    with engine.connect() as conn:
        topics = conn.exec_driver_sql("SELECT topic FROM tidings_outbox").scalars().all()
    assert topics == [topic]
    async with svc.running():
        await svc.publish(topic, {"n": 2})
        await asyncio.wait_for(handled.wait(), 10)
        await asyncio.sleep(0.2)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT topic, key, headers FROM tidings_outbox").all()
    assert [(r[0], r[1]) for r in rows] == [(topic, None), (f"{topic}.cmd", "k")]
    assert '"tidings-type":"command"' in rows[1][2]
    engine.dispose()


async def test_idempotency_store_on_another_database_is_refused(sqlite_url, tmp_path, topic):
    outbox = Outbox(sa.create_engine(sqlite_url))
    other = f"sqlite:///{tmp_path / 'other.db'}"
    svc = tidings.Service("split", "memory://", outbox=outbox, idempotency=other, register=False)

    @svc.on(topic, idempotent=True)
    async def handle(event: dict) -> None: ...

    with pytest.raises(BadRequest, match="not on the outbox's database"):
        await svc.start()
    with pytest.raises(BadRequest, match="outbox="):
        tidings.Service("bad", "memory://", outbox=object())  # type: ignore[arg-type]
    with pytest.raises(BadRequest, match="has no outbox"):
        async with tidings.Service("none", "memory://").transaction():
            pass


def start_worker(db: str, broker: str, source: str, sink: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.outbox.service_child", db, broker, source, sink],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT,
    )  # fmt: skip


@pytest.mark.slow
async def test_killed_worker_gives_each_effect_exactly_once(pg_url, topic, broker):
    """300 commands; the worker (4 concurrent handlings, each writing an effect row, emitting
    an event through the outbox, and recording the id) is SIGKILLed twice mid-run and
    restarted; its leases expire and the messages come again. Each effect is in the table
    once, each event in the outbox once, and the relay delivers each once."""
    total = 300
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE effects (order_id TEXT NOT NULL, worker INTEGER)")
    outbox = Outbox(engine)
    outbox.create_table()
    sink = f"{topic}.billed"
    async with AsyncClient(broker.url) as client:
        await client.create_topic(topic, exist_ok=True)
        await client.publish_many(
            topic, [Outgoing(b'{"order": "o%d"}' % i, msg_id=f"o{i}")
                    for i in range(total)],
        )  # fmt: skip
    effects = lambda: count(engine, "SELECT count(*) FROM effects")  # noqa: E731
    for kill_at in (60, 160):
        worker = start_worker(pg_url, broker.url, topic, sink)
        try:
            await wait_for(lambda k=kill_at: effects() >= k, what=f"{kill_at} effects")
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
    worker = start_worker(pg_url, broker.url, topic, sink)
    try:
        async with Relay(outbox, broker.url).running():
            await wait_for(lambda: effects() >= total, timeout=120, what="every effect")
            got = await drain(broker.url, sink, total, settle=1.5)
    finally:
        worker.terminate()
        worker.wait(30)
    with engine.connect() as conn:
        per_order = conn.exec_driver_sql(
            "SELECT order_id, count(*) FROM effects GROUP BY order_id"
        ).all()
        workers = conn.exec_driver_sql("SELECT count(DISTINCT worker) FROM effects").scalar()
    assert sorted(o for o, _ in per_order) == sorted(f"o{i}" for i in range(total))
    assert [o for o, n in per_order if n != 1] == []  # no effect twice
    assert workers == 3  # the effects were spread over the killed workers
    assert count(engine, "SELECT count(*) FROM tidings_outbox") == total
    bodies = sorted(m.body for m in got)
    assert len(bodies) == total and len(set(bodies)) == total
    engine.dispose()


async def test_handlings_use_only_the_connections_the_pool_keeps(pg_url, topic):
    """The pool closes an overflow connection when it comes back: handlings that used overflow
    connections reconnected to PostgreSQL for most messages under load."""
    engine = sa.create_engine(pg_url, pool_size=4, max_overflow=10)
    connects: list[int] = []
    sa.event.listen(engine, "connect", lambda *_: connects.append(1))
    outbox = Outbox(engine)
    outbox.create_table()
    svc = tidings.Service(f"pool-{secrets.token_hex(3)}", "memory://", outbox=outbox,
                          register=False)  # fmt: skip
    open_now, most, done = 0, 0, asyncio.Event()
    handled: list[int] = []

    @svc.on(topic, concurrency=10, idempotent=True)
    async def handle(event: dict, ctx: tidings.Context) -> None:
        nonlocal open_now, most
        open_now += 1
        most = max(most, open_now)
        ctx.transaction.execute(sa.text("SELECT 1"))
        await asyncio.sleep(0.02)  # the transaction stays open meanwhile
        open_now -= 1
        handled.append(event["n"])
        if len(handled) == 40:
            done.set()

    async with svc.running():
        for n in range(40):
            await svc.publish(topic, {"n": n})
        await asyncio.wait_for(done.wait(), 60)
    assert sorted(handled) == list(range(40))
    assert most == 2  # pool_size less two (for a relay and readers on the engine)
    assert len(connects) <= 4  # no connection opened beyond what the pool keeps
    engine.dispose()
