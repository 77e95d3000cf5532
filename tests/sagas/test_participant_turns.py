"""A compensation that overtakes its command in the same participant process, on PostgreSQL:
the two handlings of one step take turns. Before, the second one's write waited on the row
lock of the first while blocking the event loop the first needed to commit, so the process
stalled until the lock timeout failed the second handling (an error, then a retry)."""

from __future__ import annotations

import asyncio
import logging
import secrets

import pytest
import sqlalchemy as sa

import tidings
from tidings import headers as h
from tidings.outbox import Outbox
from tidings.sagas import protocol as p

pytestmark = pytest.mark.timeout(60)


async def test_a_steps_command_and_compensation_take_turns_in_one_process(pg_url, caplog):
    topic = f"t{secrets.token_hex(3)}"
    engine = sa.create_engine(pg_url, pool_size=10, max_overflow=0)
    svc = tidings.Service(f"{topic}-shop", "memory://", outbox=Outbox(engine), register=False,
                          backoff=tidings.Backoff(initial=0.05))  # fmt: skip
    participant = tidings.Participant(svc)
    started, release, undone = asyncio.Event(), asyncio.Event(), asyncio.Event()
    calls: list[str] = []

    @participant.command(f"{topic}.do", concurrency=2)
    async def do(cmd: dict) -> None:
        calls.append("do")
        started.set()
        await release.wait()  # its transaction (with the step's row) stays open meanwhile

    @participant.compensation(f"{topic}.undo", concurrency=2)
    async def undo(cmd: dict) -> None:
        calls.append("undo")
        undone.set()

    headers = {p.SAGA_ID: "s1", p.STEP: "one", h.REPLY_TO: f"{topic}.replies"}
    caplog.set_level(logging.INFO, logger="tidings")
    async with svc.running():
        await svc.publish(f"{topic}.do", {}, key="s1", headers=headers)
        await asyncio.wait_for(started.wait(), 20)
        await svc.publish(f"{topic}.undo", {}, key="s1",
                          headers={**headers, p.COMMAND: f"{topic}.do"})  # fmt: skip
        await asyncio.sleep(0.5)  # the compensation is handled meanwhile: it waits its turn
        release.set()
        await asyncio.wait_for(undone.wait(), 20)
        await asyncio.sleep(0.2)
    failures = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert failures == []
    assert calls == ["do", "undo"]  # the command took effect, then was undone, once each
    with engine.connect() as conn:
        status = conn.exec_driver_sql("SELECT status FROM tidings_saga_participant").scalars()
        assert list(status) == ["compensated"]
    engine.dispose()
