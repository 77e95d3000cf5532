"""Idempotent consumers over memory://: duplicates (same producer msg_id delivered twice)
are skipped, and the handler's writes share the processed-id transaction."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from tests.helpers.broker_process import BrokerProcess

import tidings
from tidings.testing import ServiceKit

from .models import OrderRefunded


def make(tmp_path, fail_first: bool = False):
    store = tidings.IdempotencyStore(f"sqlite:///{tmp_path / 'payment.db'}")
    with store.engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE refunds (order_id TEXT)"))
    svc = tidings.Service("payment", idempotency=store, backoff=tidings.Backoff(initial=0))
    svc.topic("order.refunded", dedup_window=0)  # let the broker pass duplicates through
    calls = []

    @svc.on("order.refunded", idempotent=True)
    async def refund(event: OrderRefunded, ctx: tidings.Context) -> None:
        calls.append(ctx.message_id)
        ctx.transaction.execute(sa.text("INSERT INTO refunds VALUES (:o)"), {"o": event.order_id})
        if fail_first and len(calls) == 1:
            raise RuntimeError("crash after the write")

    def rows() -> list[str]:
        with store.engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.text("SELECT order_id FROM refunds"))]

    return svc, store, calls, rows


async def test_duplicates_are_skipped(tmp_path):
    svc, store, calls, rows = make(tmp_path)
    async with ServiceKit(svc) as kit:
        for _ in range(3):
            await kit.publish("order.refunded", OrderRefunded(order_id="o-1"), msg_id="refund-o-1")
        await kit.publish("order.refunded", OrderRefunded(order_id="o-2"), msg_id="refund-o-2")
        records = await kit.handled("order.refunded", count=4)
    assert [r.outcome for r in records].count("duplicate") == 2
    assert calls == ["refund-o-1", "refund-o-2"]
    assert rows() == ["o-1", "o-2"]
    assert await store.is_processed("order.refunded/payment", "refund-o-1")
    store.close()


async def test_failed_handling_rolls_back_its_writes_and_retries(tmp_path):
    svc, store, calls, rows = make(tmp_path, fail_first=True)
    async with ServiceKit(svc) as kit:
        await kit.publish("order.refunded", OrderRefunded(order_id="o-1"), msg_id="m-1")
        await kit.handled("order.refunded", outcome="ok")
    assert len(calls) == 2 and rows() == ["o-1"]  # the first write was rolled back
    store.close()


async def test_default_store_on_memory_is_in_memory(tmp_path, monkeypatch):
    """memory:// forgets its messages with the process: a processed-id file in the working
    directory made the next run (a test run, say) skip its messages that reuse an id."""
    monkeypatch.chdir(tmp_path)
    for _run in range(2):
        svc = tidings.Service("ledger")

        @svc.on("entries", idempotent=True)
        async def entry(payload: dict) -> None: ...

        async with ServiceKit(svc) as kit:
            await kit.publish("entries", {"n": 1}, msg_id="entry-1")
            records = await kit.handled("entries")
        assert [r.outcome for r in records] == ["ok"]  # not "duplicate" the second time
    assert not (tmp_path / ".tidings").exists()


async def test_default_store_on_a_broker_is_a_sqlite_file_it_names(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO, logger="tidings.service")
    with BrokerProcess(tmp_path / "broker") as broker:
        svc = tidings.Service("ledger", url=broker.url)

        @svc.on("entries", idempotent=True)
        async def entry(payload: dict) -> None: ...

        async with svc.running():
            pass
    assert (tmp_path / ".tidings" / "ledger-processed.sqlite3").exists()
    assert "processed ids in .tidings/ledger-processed.sqlite3" in caplog.text


async def test_concurrent_writers_on_sqlite_do_not_deadlock(tmp_path):
    """Eight concurrent idempotent handlers that write through ctx.transaction and then await
    must not wait on each other's SQLite write lock from the event loop's thread (which would
    stall every handler until SQLite's busy timeout)."""
    import asyncio
    import time

    store = tidings.IdempotencyStore(f"sqlite:///{tmp_path / 'payment.db'}")
    with store.engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE refunds (order_id TEXT)"))
    svc = tidings.Service("payment", idempotency=store)

    @svc.on("order.refunded", idempotent=True, concurrency=8)
    async def refund(event: OrderRefunded, ctx: tidings.Context) -> None:
        ctx.transaction.execute(sa.text("INSERT INTO refunds VALUES (:o)"), {"o": event.order_id})
        await asyncio.sleep(0.01)  # other work while the write transaction is open

    started = time.monotonic()
    async with ServiceKit(svc) as kit:
        for i in range(24):
            await kit.publish("order.refunded", OrderRefunded(order_id=f"o-{i}"), msg_id=f"m-{i}")
        records = await kit.handled("order.refunded", count=24, timeout=20)
    assert all(r.outcome == "ok" for r in records)
    assert time.monotonic() - started < 10  # a lock wait would take SQLite's 30 s timeout
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM refunds")).scalar() == 24
    store.close()


async def test_serialize_false_lets_sqlite_handlings_overlap(tmp_path):
    """A store told its handlers never write on the loop lets handlings run concurrently:
    all four are inside the handler at once (with turn-taking they never would be)."""
    import asyncio

    store = tidings.IdempotencyStore(f"sqlite:///{tmp_path / 'p.db'}", serialize=False)
    svc = tidings.Service("payment", idempotency=store)
    inside = 0
    peak = 0
    all_in = asyncio.Event()

    @svc.on("order.refunded", idempotent=True, concurrency=4)
    async def refund(event: OrderRefunded) -> None:
        nonlocal inside, peak
        inside += 1
        peak = max(peak, inside)
        if inside == 4:
            all_in.set()
        await asyncio.wait_for(all_in.wait(), 10)
        inside -= 1

    async with ServiceKit(svc) as kit:
        for i in range(4):
            await kit.publish("order.refunded", OrderRefunded(order_id=f"o-{i}"), msg_id=f"m-{i}")
        records = await kit.handled("order.refunded", count=4, timeout=20)
    assert peak == 4 and all(r.outcome == "ok" for r in records)
    store.close()
