"""Relays killed with SIGKILL between the broker's confirm and the mark (poll) or the slot
confirm (tail), again and again, while 8 writers add 10k rows: every row reaches the broker
exactly once (the broker's dedup absorbs the re-sends) and in per-key order. And failover:
three relays, one active; SIGKILL the active one twice, a standby takes over within seconds,
order per key holds."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
import sqlalchemy as sa

from tidings.outbox import Outbox
from tidings.outbox.tailing import TailSource

from .conftest import drain

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
WRITERS = 8


def start_relay(db: str, broker: str, mode: str, kill: float, batch: int = 200):
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.outbox.relay_child", db, broker, mode, str(kill), str(batch)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
    )  # fmt: skip


def write_rows(outbox: Outbox, topic: str, total: int, per_txn: int = 25) -> dict[str, list[str]]:
    """8 threads, each its own keys, rows in transactions of ``per_txn``: msg_ids per key in
    write order."""
    by_key: dict[str, list[str]] = defaultdict(list)
    lock = threading.Lock()
    engine = outbox.sync_engine

    def writer(w: int) -> None:
        n = total // WRITERS
        for start in range(0, n, per_txn):
            keys = [f"w{w}-k{(start + i) % 10}" for i in range(min(per_txn, n - start))]
            with engine.begin() as conn:
                payloads = [{"w": w, "i": start + i} for i in range(len(keys))]
                ids = outbox.publish_many(conn, topic, payloads, keys=keys)
            with lock:
                for key, msg_id in zip(keys, ids, strict=True):
                    by_key[key].append(msg_id)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return by_key


def check_exactly_once_in_order(got, by_key: dict[str, list[str]], total: int) -> None:
    ids = [m.msg_id for m in got]
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} duplicates reached the topic"
    assert len(ids) == total, f"{total - len(ids)} rows lost"
    seen: dict[str, list[str]] = defaultdict(list)
    for m in got:
        seen[m.key].append(m.msg_id)
    assert seen == by_key  # same rows per key, in write order


@pytest.mark.parametrize("mode", ["poll", "tail"])
async def test_sigkill_between_confirm_and_mark_loses_nothing(mode, pg_url, topic, broker):
    total = 10_000
    engine = sa.create_engine(pg_url, pool_size=10)
    outbox = Outbox(engine)
    outbox.create_table()
    if mode == "tail":  # the slot must exist before the writes, or a backfill carries them
        await TailSource(outbox)._prepare_async()
    kills = 0
    result: dict[str, list[str]] = {}
    writers = threading.Thread(target=lambda: result.update(write_rows(outbox, topic, total)))
    writers.start()
    deadline = time.monotonic() + 150
    outputs: list[str] = []
    while True:
        relay = start_relay(pg_url, broker.url, mode, kill=0.2, batch=100)
        try:
            code = await asyncio.wait_for(asyncio.to_thread(relay.wait), 15)
        except TimeoutError:
            code = None  # it ran 15 s without dying: nothing was left to publish
        if code == -signal.SIGKILL:
            kills += 1
        else:
            relay.terminate()
            relay.wait()
        outputs.append(relay.stdout.read() if relay.stdout else "")
        if kills >= 10 or code is None or time.monotonic() > deadline:
            break
    writers.join()
    # a last relay that does not die publishes whatever the killed ones left
    final = start_relay(pg_url, broker.url, mode, kill=0.0)
    try:
        got = await drain(broker.url, topic, total, timeout=120, settle=1.0)
    finally:
        final.terminate()
        final.wait(20)
    assert kills >= 10, f"only {kills} kills:\n" + "\n".join(o[-2000:] for o in outputs)
    check_exactly_once_in_order(got, result, total)
    engine.dispose()


async def test_failover_between_three_relays(pg_url, topic, broker):
    total = 4_000
    engine = sa.create_engine(pg_url, pool_size=10)
    outbox = Outbox(engine)
    outbox.create_table()
    relays = [start_relay(pg_url, broker.url, "tail", kill=0.0, batch=100) for _ in range(3)]
    active: list[int] = []
    lines: list[str] = []

    def read(proc) -> None:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("active "):
                active.append(int(line.split()[1]))

    for proc in relays:
        threading.Thread(target=read, args=(proc,), daemon=True).start()
    result: dict[str, list[str]] = {}
    try:
        writers = threading.Thread(target=lambda: result.update(write_rows(outbox, topic, total)))
        writers.start()
        takeovers = []
        for _ in range(2):
            deadline = time.monotonic() + 60
            while len(active) < len(takeovers) + 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert len(active) == len(takeovers) + 1, "".join(lines[-40:])
            await asyncio.sleep(1.0)  # let it publish a while
            victim = active[-1]
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            while len(active) < len(takeovers) + 2 and time.monotonic() < killed_at + 60:
                await asyncio.sleep(0.02)
            assert len(active) == len(takeovers) + 2, "no takeover:\n" + "".join(lines[-40:])
            takeovers.append(time.monotonic() - killed_at)
        writers.join()
        got = await drain(broker.url, topic, total, timeout=120, settle=1.0)
        assert len(got) == total, "".join(lines[-60:])
        check_exactly_once_in_order(got, result, total)
        assert len(set(active)) == 3
        print(f"takeover after SIGKILL: {', '.join(f'{t:.2f}s' for t in takeovers)}")
        assert max(takeovers) < 15, takeovers  # a few seconds; generous for a loaded machine
    finally:
        for proc in relays:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    engine.dispose()


async def test_relay_killed_mid_backfill_leaves_the_rest_to_the_next(pg_url, topic, broker):
    """Rows written before the slot existed come by a backfill, not the stream. The first relay
    creates the slot and dies (SIGKILL) after its first backfill batch; the next relay finds
    the slot and must finish the backfill (it used to skip it: a slot that existed meant 'no
    backfill', and every pre-slot row not yet polled out was lost; in the failover test that
    happened when a loaded machine made the backfill outlast the first relay)."""
    engine = sa.create_engine(pg_url, pool_size=10)
    outbox = Outbox(engine)
    outbox.create_table()
    before = write_rows(outbox, topic, 2_000)
    first = start_relay(pg_url, broker.url, "tail", kill=1.0, batch=100)
    out, _ = first.communicate(timeout=120)
    assert first.returncode == -signal.SIGKILL and "killing after 100 rows" in out, out
    after = write_rows(outbox, topic, 400)  # in the stream of the slot the first relay made
    second = start_relay(pg_url, broker.url, "tail", kill=0.0, batch=100)
    try:
        got = await drain(broker.url, topic, 2_400, timeout=120, settle=1.0)
    finally:
        second.kill()
        second.wait()
    by_key = {k: before.get(k, []) + after.get(k, []) for k in {*before, *after}}
    check_exactly_once_in_order(got, by_key, 2_400)
    with engine.connect() as conn:  # the backfill is done: the next start does not redo it
        assert conn.exec_driver_sql("SELECT count(*) FROM tidings_outbox_backfill").scalar() == 0
    engine.dispose()
