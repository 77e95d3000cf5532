"""The outbox relayed from PostgreSQL to a real nats-server (JetStream), by both relays.

Polling and tailing each carry rows from 4 concurrent writers to nats:// exactly once and in
per-key order, a rolled-back transaction publishing nothing; and relays SIGKILLed between
the broker's confirm and the mark / slot confirm send batches again, which JetStream's
duplicate window (the ``Nats-Msg-Id`` the relay sets from the row's msg_id) absorbs. The
tidings:// broker runs the same scenarios in test_crash.py, test_polling.py and
test_tailing.py; SQLite polling to nats:// is in test_polling.py.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest
import sqlalchemy as sa

from tidings.outbox import Outbox, Relay
from tidings.outbox.tailing import TailSource

from .conftest import drain
from .test_crash import check_exactly_once_in_order, start_relay, write_rows
from .test_polling import unpublished, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.mark.parametrize("mode", ["poll", "tail"])
async def test_rows_reach_nats_once_in_key_order(mode, pg_url, topic, nats_url) -> None:
    engine = sa.create_engine(pg_url, pool_size=10)
    outbox = Outbox(engine)
    outbox.create_table()
    if mode == "tail":  # the slot first, so the rows come by the stream, not a backfill
        await TailSource(outbox)._prepare_async()
    relay = Relay(outbox, nats_url, mode=mode, batch_size=100)
    async with relay.running():
        with pytest.raises(RuntimeError), engine.begin() as conn:
            outbox.publish(conn, topic, {"n": "rolled back"}, key="w0-k0")
            raise RuntimeError("abort")
        by_key = await asyncio.to_thread(write_rows, outbox, topic, 2_000)
        got = await drain(nats_url, topic, 2_000, timeout=120, settle=1.0)
        if mode == "poll":
            await wait_for(lambda: unpublished(engine) == 0, what="rows marked")
    check_exactly_once_in_order(got, by_key, 2_000)
    assert relay.published >= 2_000
    engine.dispose()


@pytest.mark.parametrize("mode", ["poll", "tail"])
async def test_killed_relays_resend_into_nats_dedup(mode, pg_url, topic, nats_url) -> None:
    """Each relay SIGKILLs itself with probability 0.3 after a confirmed batch, before marking
    it: the next relay sends that batch again under the same msg_ids."""
    total = 3_000
    engine = sa.create_engine(pg_url, pool_size=10)
    outbox = Outbox(engine)
    outbox.create_table()
    if mode == "tail":
        await TailSource(outbox)._prepare_async()
    by_key = await asyncio.to_thread(write_rows, outbox, topic, total)
    kills, outputs = 0, []
    deadline = time.monotonic() + 120
    while kills < 4 and time.monotonic() < deadline:
        relay = start_relay(pg_url, nats_url, mode, kill=0.3, batch=100)
        try:
            code = await asyncio.wait_for(asyncio.to_thread(relay.wait), 20)
        except TimeoutError:
            code = None  # ran 20 s without dying: everything was published
            relay.terminate()
            relay.wait(20)
        outputs.append(relay.stdout.read() if relay.stdout else "")
        if code == -signal.SIGKILL:
            kills += 1
        elif code is None:
            break
    final = start_relay(pg_url, nats_url, mode, kill=0.0)
    try:
        got = await drain(nats_url, topic, total, timeout=120, settle=1.5)
    finally:
        final.terminate()
        final.wait(20)
    assert kills >= 1, "no relay was killed:\n" + "\n".join(o[-2000:] for o in outputs)
    assert any("killing after" in o for o in outputs)
    check_exactly_once_in_order(got, by_key, total)
    engine.dispose()
