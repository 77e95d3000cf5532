"""Operator actions on a real broker, on SQLite and on PostgreSQL: ``retry`` sends the current
step again (the saga completes once the participant is back), ``compensate`` undoes exactly the
completed steps, ``abort`` stops an instance without compensations; each is recorded in the
history with who and why, and refused with a clear error when the instance does not allow it."""

from __future__ import annotations

import asyncio
import contextlib
import secrets

import pytest

import tidings
from tidings import AsyncClient
from tidings.cli.main import main
from tidings.outbox import Relay

from .shop import OrderState, make_orders, make_shop, running_shop, topics

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def prefix() -> str:
    return f"o{secrets.token_hex(3)}"


@pytest.fixture(params=["sqlite", "postgresql"])
def dbs(request, tmp_path) -> tuple[str, str]:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'orders.db'}", f"sqlite:///{tmp_path / 'shop.db'}"
    pg = request.getfixturevalue("postgres_server")
    return pg.create_database(), pg.create_database()


async def cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(args))  # it waits for the orchestrator
    out = capsys.readouterr()
    return code, out.out, out.err


def history(orchestrator: tidings.Orchestrator, saga_id: str) -> list[tuple[str, str | None]]:
    with orchestrator._engine().connect() as conn:
        _, rows = orchestrator.store.show(conn, saga_id)
    return [(r["event"], r["detail"]) for r in rows]


async def at_step(orchestrator: tidings.Orchestrator, saga_id: str, step: int) -> None:
    for _ in range(600):
        record = await orchestrator.get(saga_id)
        if record is not None and record.step == step and record.status == "running":
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"saga {saga_id} never reached step {step}")


async def test_retry_of_a_step_whose_participant_was_down_completes(prefix, dbs, broker, capsys):
    orders_db, shop_db = dbs
    svc, orchestrator, saga = make_orders(prefix, orders_db, broker.url, timeout=60.0)
    charge_topic = topics(prefix)["charge"][0]
    async with contextlib.AsyncExitStack() as stack:
        for part in (svc, Relay(svc.outbox, broker.url, max_interval=0.05)):  # type: ignore[arg-type]
            await stack.enter_async_context(part.running())
        saga_id = await orchestrator.start(saga, OrderState(order="o-1"), id=f"{prefix}-1")
        async with AsyncClient(broker.url) as client:  # the command reached the broker ...
            await client.create_topic(charge_topic, exist_ok=True)
            peek = await client.subscribe(charge_topic, "peek")
            assert await peek.next_batch(1, timeout=20)
            await peek.close()
            await client.delete_topic(charge_topic)  # ... and was lost while payments was down
        shop = make_shop(prefix, shop_db, broker.url)
        for part in (shop, Relay(shop.outbox, broker.url, max_interval=0.05)):  # type: ignore[arg-type]
            await stack.enter_async_context(part.running())
        await asyncio.sleep(0.5)
        assert (await orchestrator.get(saga_id)).status == "running"  # type: ignore[union-attr]

        code, out, err = await cli(capsys, "sagas", "retry", saga_id, "--db", orders_db,
                                   "--reason", "payments is back", "--by", "ops-ann")  # fmt: skip
        assert code == 0, err
        # done by the orchestrator; the status the CLI then reads depends on how fast the
        # retried command's reply comes (PostgreSQL's relay no longer waits 0.1 s a hop)
        assert "retry -> running" in out or "retry -> completed" in out
        record = await orchestrator.wait(saga_id, timeout=30)
        assert record.status == "completed"
        assert record.steps[0]["attempts"] == 2
        events = history(orchestrator, saga_id)
        retried = [d for e, d in events if e == "operator-retry"]
        assert len(retried) == 1 and retried[0].startswith("by ops-ann: payments is back (op-")
        assert ("command-sent", f"{prefix}.pay.charge attempt 2") in events

        # a completed saga has nothing to retry: refused, and nothing is written
        version = record.version
        code, _, err = await cli(capsys, "sagas", "retry", saga_id, "--db", orders_db)
        assert code == 5 and f"saga {saga_id} is completed: cannot retry it" in err
        with pytest.raises(tidings.errors.SagaConflict, match="is completed: cannot retry"):
            await orchestrator.retry(saga_id)
        assert (await orchestrator.get(saga_id)).version == version  # type: ignore[union-attr]
    effects = sa_effects(shop_db, saga_id)
    assert effects == [("charge", "do"), ("reserve", "do"), ("book", "do")]


def sa_effects(db: str, saga_id: str) -> list[tuple[str, str]]:
    import sqlalchemy as sa

    engine = sa.create_engine(db)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT saga_id, step, kind FROM effects").all()
    finally:
        engine.dispose()
    return [(r[1], r[2]) for r in rows if r[0] == saga_id]


async def test_compensate_mid_way_undoes_exactly_the_completed_steps(prefix, dbs, broker):
    async with running_shop(prefix, *dbs, broker.url, timeout=60.0) as shop:
        saga_id = await shop.orchestrator.start(shop.saga, OrderState(order="o-2", hang="book"))
        await at_step(shop.orchestrator, saga_id, 2)  # book is in flight, never answered
        request = await shop.orchestrator.compensate(saga_id, reason="customer cancelled")
        record = await shop.orchestrator.wait(saga_id, timeout=30)
        assert record.status == "compensated"
        assert record.failed_step == "book" and "customer cancelled" in (record.error or "")
        effects = shop.effects(saga_id)
        assert [e for e in effects if e[1] == "undo"] == [("reserve", "undo"), ("charge", "undo")]
        assert sorted(e for e in effects if e[1] == "do") == [("charge", "do"), ("reserve", "do")]
        events = history(shop.orchestrator, saga_id)
        assert next(d for e, d in events if e == "operator-compensate").endswith(
            f": customer cancelled ({request})"
        )
        with pytest.raises(tidings.errors.SagaConflict, match="is compensated: cannot compensate"):
            await shop.orchestrator.compensate(saga_id)


async def test_abort_stops_a_saga_and_the_pivot_refuses_compensation(prefix, dbs, broker, capsys):
    orders_db = dbs[0]
    async with running_shop(prefix, *dbs, broker.url, timeout=60.0, pivot="reserve") as shop:
        saga_id = await shop.orchestrator.start(shop.saga, OrderState(order="o-3", hang="book"))
        await at_step(shop.orchestrator, saga_id, 2)  # past the pivot: only forward
        with pytest.raises(tidings.errors.SagaConflict, match="past the pivot reserve"):
            await shop.orchestrator.compensate(saga_id)
        # the CLI has no saga definitions: the orchestrator refuses it and records why
        code, _, err = await cli(capsys, "sagas", "compensate", saga_id, "--db", orders_db)
        assert code == 5 and "past the pivot reserve: it only moves forward" in err
        assert "action-refused" in [e for e, _ in history(shop.orchestrator, saga_id)]

        code, _, err = await cli(capsys, "sagas", "abort", saga_id, "--db", orders_db)
        assert code == 2 and "again with --yes" in err
        code, out, err = await cli(capsys, "sagas", "abort", saga_id, "--db", orders_db, "--yes",
                                   "--reason", "shipped by hand", "--json")  # fmt: skip
        assert code == 0, err
        assert '"status": "aborted"' in out
        record = await shop.orchestrator.wait(saga_id, timeout=5)
        assert record.status == "aborted" and record.token is None
        assert (
            next(d for e, d in history(shop.orchestrator, saga_id) if e == "operator-abort")
            .split(" (op-")[0]
            .endswith(": shipped by hand")
        )
        await asyncio.sleep(0.5)  # the hanging command keeps coming back: nothing changes
        assert (await shop.orchestrator.get(saga_id)).version == record.version  # type: ignore[union-attr]
        assert ("book", "undo") not in shop.effects(saga_id)
        assert not [e for e in shop.effects(saga_id) if e[1] == "undo"]

        code, _, err = await cli(capsys, "sagas", "retry", saga_id, "--db", orders_db)
        assert code == 5 and "is aborted: cannot retry it" in err
        code, _, err = await cli(capsys, "sagas", "retry", "nope", "--db", orders_db)
        assert code == 4 and "no saga 'nope'" in err
        code, out, _ = await cli(capsys, "sagas", "list", "--db", orders_db, "--status", "aborted",
                                 "--json")  # fmt: skip
        assert code == 0 and f'"id": "{saga_id}"' in out
