"""On PostgreSQL the statement that locks a saga row or a participant's step record also sets
the transaction's lock timeout (tidings.sagas.locking): a row another transaction holds is
waited for only that long, then the statement fails (and the handling is retried)."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

import tidings
from tidings.outbox import Outbox
from tidings.sagas import locking
from tidings.sagas.machine import Machine
from tidings.sagas.store import SagaStore


@pytest.fixture
def engine(pg_url):
    engine = sa.create_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture
def short_wait(monkeypatch):
    monkeypatch.setattr(locking, "LOCK_TIMEOUT", "300ms")


def held_too_long(exc: sa.exc.OperationalError) -> bool:
    return "lock timeout" in str(exc)


def test_loading_a_saga_row_someone_holds_gives_up_after_the_lock_timeout(engine, short_wait):
    store = SagaStore()
    store.create_tables(engine)
    saga = tidings.Saga("locked")
    saga.step(command="x.do", name="do")(lambda state: {})
    record, _ = Machine(saga).begin("s1", {})
    with engine.begin() as conn:
        store.insert(conn, record)
    with engine.connect() as holder, engine.connect() as other:
        holder.begin()
        assert store.load(holder, "s1") is not None  # locked until holder's transaction ends
        other.begin()
        started = time.monotonic()
        with pytest.raises(sa.exc.OperationalError) as caught:
            store.load(other, "s1")
        waited = time.monotonic() - started
        assert held_too_long(caught.value), caught.value
        assert 0.25 <= waited < 3.0
        other.rollback()
        holder.rollback()
        other.begin()  # released: the lock is had at once, and the timeout was only local
        assert store.load(other, "s1").id == "s1"
        assert other.exec_driver_sql("SHOW lock_timeout").scalar() == "300ms"
        other.rollback()
        assert other.exec_driver_sql("SHOW lock_timeout").scalar() == "0"


def test_a_step_claim_waits_for_a_concurrent_claim_only_as_long_as_the_lock_timeout(
    engine, short_wait
):
    svc = tidings.Service("claims", "memory://", outbox=Outbox(engine), register=False)
    participant = tidings.Participant(svc)
    with engine.connect() as first, engine.connect() as second:
        first.begin()
        assert participant._claim(first, "pay.charge", "s1", "charge", "running", b"") is None
        second.begin()
        started = time.monotonic()
        with pytest.raises(sa.exc.OperationalError) as caught:  # the insert is not committed
            participant._claim(second, "pay.charge", "s1", "charge", "cancelled", b"no")
        assert held_too_long(caught.value), caught.value
        assert 0.25 <= time.monotonic() - started < 3.0
        second.rollback()
        participant._set(first, "pay.charge", "s1", "charge", status="done", reply=b"ok")
        first.commit()
        second.begin()  # the record exists now: the claim returns it, locked
        existing = participant._claim(second, "pay.charge", "s1", "charge", "cancelled", b"no")
        assert (existing.status, existing.reply) == ("done", b"ok")
        first.begin()
        with pytest.raises(sa.exc.OperationalError) as caught:
            participant._claim(first, "pay.charge", "s1", "charge", "running", b"")
        assert held_too_long(caught.value), caught.value
        first.rollback()
        second.rollback()
    with engine.connect() as conn:
        rows = conn.execute(sa.select(participant.table.c.status)).scalars().all()
    assert rows == ["done"]
