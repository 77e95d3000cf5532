"""The processed-id store: duplicates skipped, one transaction with the handler's work,
concurrent duplicates resolved by the primary key, old ids cleaned up."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tidings.service.idempotency import DuplicateMessage, IdempotencyStore


@pytest.fixture
def store(tmp_path):
    s = IdempotencyStore(f"sqlite:///{tmp_path / 'processed.db'}", window=100.0)
    s.engine.dispose()
    with s.engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE refunds (order_id TEXT PRIMARY KEY)"))
    yield s
    s.close()


def refunds(store) -> list[str]:
    with store.engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text("SELECT order_id FROM refunds"))]


async def test_first_time_runs_second_time_is_a_duplicate(store):
    async with store.guard("orders/payment", "m-1") as guard:
        assert not guard.duplicate
        guard.connection.execute(sa.text("INSERT INTO refunds VALUES ('o-1')"))
    async with store.guard("orders/payment", "m-1") as guard:
        assert guard.duplicate
    assert await store.is_processed("orders/payment", "m-1")
    assert not await store.is_processed("orders/other-group", "m-1")  # ids are per consumer
    assert refunds(store) == ["o-1"]


async def test_failure_rolls_back_work_and_record(store):
    with pytest.raises(RuntimeError):
        async with store.guard("c", "m-2") as guard:
            guard.connection.execute(sa.text("INSERT INTO refunds VALUES ('o-2')"))
            raise RuntimeError("handler failed")
    assert refunds(store) == []
    assert not await store.is_processed("c", "m-2")


async def test_concurrent_duplicate_loses_on_the_primary_key(store):
    """Two handlings pass the lookup; the second to commit rolls back its work."""
    first = store.guard("c", "m-3")
    second = store.guard("c", "m-3")
    g1 = await first.__aenter__()
    g1.connection.execute(sa.text("INSERT INTO refunds VALUES ('o-3a')"))
    await first.__aexit__(None, None, None)
    assert await store.mark_processed("c", "other")  # the helper records outside handlers
    assert not await store.mark_processed("c", "other")
    # simulate the race: a guard that saw no record before the first one committed
    conn = store._begin()
    try:
        with pytest.raises(DuplicateMessage):
            conn.execute(sa.text("INSERT INTO refunds VALUES ('o-3b')"))
            store._commit_record(conn, "c", "m-3")
    finally:
        conn.close()
    assert refunds(store) == ["o-3a"]
    del second


async def test_cleanup_removes_ids_older_than_the_window(tmp_path):
    now = [1000.0]
    store = IdempotencyStore(f"sqlite:///{tmp_path / 'p.db'}", window=60, clock=lambda: now[0])
    await store.mark_processed("c", "old")
    now[0] += 50
    await store.mark_processed("c", "new")
    now[0] += 20  # "old" is 70 s old, "new" 20 s
    assert store.cleanup() == 1
    assert not await store.is_processed("c", "old")
    assert await store.is_processed("c", "new")
    store.close()


async def test_any_sqlalchemy_engine_works():
    # database calls run in worker threads: a SQLite engine must allow that
    engine = sa.create_engine(
        "sqlite://", poolclass=sa.pool.StaticPool, connect_args={"check_same_thread": False}
    )
    store = IdempotencyStore(engine=engine)
    async with store.guard("c", "m") as guard:
        assert not guard.duplicate
    assert await store.is_processed("c", "m")
