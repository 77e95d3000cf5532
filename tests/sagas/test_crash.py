"""Orchestrator and participant processes on PostgreSQL, SIGKILLed again and again while
1,000 sagas run (the issue's scale: 1,000 concurrent sagas, 10+ kills): every saga ends
completed or compensated, and every participant effect happened exactly once (counted in the
participant's own table), however often commands and replies came again.

Two orchestrators and two participant processes; ten kills at fixed points of progress
(every 85 ended sagas from the 60th), so each kill happens on every run, mid-flight. The two
databases commit with ``synchronous_commit = off``: the processes killed are the
application's, not PostgreSQL, whose commits are durable against those kills either way; the
flushes only add waiting on the shared disk. Measured: 99 s for the test at load average 12
on the 2-core machine (122 s with twelve kills and synchronous commits, load 13.7).
``SAGA_CRASH_STEPS`` (default 3) sets the saga's length: 10 runs the same test with 10,000
steps (about 15 ms of CPU a step across the processes and PostgreSQL: over the CI budget on
the 2-core machine, so not the default; it passed in 488 s at load average 15-20).
"""

from __future__ import annotations

import asyncio
import collections
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from .shop import OrderState, make_orders, make_shop, step_names

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow]
WAIT = float(os.environ.get("SAGA_CRASH_WAIT", "180"))
STEP_COUNT = int(os.environ.get("SAGA_CRASH_STEPS", "3"))

ROOT = Path(__file__).resolve().parents[2]
SAGAS = 1000
VICTIMS = ("a", "shop1", "b", "shop2") * 3
KILLS = [(victim, 60 + 85 * i) for i, victim in enumerate(VICTIMS[:10])]  # up to 825 ended


def spawn(role: str, db: str, broker: str, prefix: str, logs: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    log = logs / f"{role}-{len(list(logs.iterdir()))}.log"
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.sagas.shop", role, db, broker, prefix,
             str(STEP_COUNT), "16"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )  # fmt: skip


_ENGINES: dict[str, sa.Engine] = {}


def scalar(db: str, sql: str) -> int:
    """One engine per database for the test's polls (a new one per poll opened a PostgreSQL
    connection ten times a second: CPU the processes under test then missed)."""
    engine = _ENGINES.get(db) or _ENGINES.setdefault(db, sa.create_engine(db))
    with engine.connect() as conn:
        return conn.exec_driver_sql(sql).scalar() or 0


async def wait_for(check, what: str, timeout: float = WAIT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await asyncio.to_thread(check):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


async def test_sigkilled_orchestrators_lose_no_saga_and_double_no_effect(
    postgres_server, broker, tmp_path
):
    prefix = f"k{secrets.token_hex(3)}"
    orders_db, shop_db = postgres_server.create_database(), postgres_server.create_database()
    for db in (orders_db, shop_db):
        name = sa.make_url(db).database
        postgres_server.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    steps = step_names(STEP_COUNT)
    # the starter: an orchestrator that is never run, only used to start instances
    _, starter, saga = make_orders(prefix, orders_db, broker.url, steps=STEP_COUNT, partitions=16)
    # the shop's tables too, before its two processes start at once (both creating them
    # raced: one crashed on PostgreSQL's duplicate type name, and ran no handler until killed)
    make_shop(prefix, shop_db, broker.url, steps=STEP_COUNT).outbox.sync_engine.dispose()  # type: ignore[union-attr]
    fails = {i: steps[i % len(steps)] for i in range(SAGAS) if i % 4 == 0}  # a quarter fail
    procs = {
        "a": spawn("orders", orders_db, broker.url, prefix, tmp_path),
        "b": spawn("orders", orders_db, broker.url, prefix, tmp_path),
        "shop1": spawn("shop", shop_db, broker.url, prefix, tmp_path),
        "shop2": spawn("shop", shop_db, broker.url, prefix, tmp_path),
    }
    ended = "SELECT count(*) FROM tidings_sagas WHERE status IN ('completed', 'compensated')"
    kills = 0
    try:
        for first in range(0, SAGAS, 100):  # all started at once, 100 to a transaction
            async with starter.service.transaction() as tx:
                for i in range(first, first + 100):
                    state = OrderState(order=f"o{i}", fail=fails.get(i), slow=0.01)
                    await starter.start(saga, state, id=f"s{i}", tx=tx)
        # kill orchestrators and participants in turn, at points spread over the run
        for victim, at in KILLS:
            await wait_for(lambda n=at: scalar(orders_db, ended) >= n, f"{at} sagas ended")
            kill(procs[victim])
            kills += 1
            role, db = ("shop", shop_db) if victim.startswith("shop") else ("orders", orders_db)
            procs[victim] = spawn(role, db, broker.url, prefix, tmp_path)
        await wait_for(lambda: scalar(orders_db, ended) >= SAGAS, "every saga ended", 400)
        await asyncio.sleep(1.0)  # late duplicates would show now
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                kill(proc)
    for polls in _ENGINES.values():
        polls.dispose()
    _ENGINES.clear()
    engine = sa.create_engine(orders_db)
    with engine.connect() as conn:
        status = dict(conn.exec_driver_sql("SELECT id, status FROM tidings_sagas").all())
    engine.dispose()
    engine = sa.create_engine(shop_db)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT saga_id, step, kind, pid FROM effects").all()
    engine.dispose()
    effects = collections.Counter((r[0], r[1], r[2]) for r in rows)
    assert kills == len(KILLS) >= 10
    assert len(status) == SAGAS
    assert set(status.values()) <= {"completed", "compensated"}
    assert {i for i in range(SAGAS) if status[f"s{i}"] == "compensated"} >= set(fails)
    assert [k for k, n in effects.items() if n != 1] == []  # nothing happened twice
    for i in range(SAGAS):
        saga_id = f"s{i}"
        done = {s for s in steps if effects[(saga_id, s, "do")]}
        undone = {s for s in steps if effects[(saga_id, s, "undo")]}
        if status[saga_id] == "completed":
            assert (done, undone) == (set(steps), set()), saga_id
        else:  # every effect that happened was undone once, and the failing step left none
            assert done == undone, saga_id
            if i in fails:
                assert fails[i] not in done, saga_id
    assert len({r[3] for r in rows}) >= 4  # participants were killed and restarted mid-run
