"""A redrive survives a SIGKILL of the broker right after it was confirmed: the dead letters
are not listed (nor redriven) again after the restart, the group receives each exactly once
under its original id, and the topic's other group receives none (the republish and the
record of what was redriven are in one commit)."""

from __future__ import annotations

import asyncio

from tests.helpers.broker_process import BrokerProcess

import tidings

N = 20


async def test_a_confirmed_redrive_survives_a_crash(tmp_path):
    broker = BrokerProcess(tmp_path / "data", args=["--heartbeat", "1.0"])
    await asyncio.to_thread(broker.start)
    try:
        async with tidings.connect(broker.url, timeout=20.0) as client:
            await client.create_topic("refunds")
            billing = await client.subscribe("refunds", "billing", max_deliveries=1, prefetch=N)
            audit = await client.subscribe("refunds", "audit", prefetch=N)
            ids = [(await client.publish("refunds", b"r%d" % i)).id for i in range(N)]
            for _ in range(N):
                await (await billing.next(timeout=10)).reject("declined")
                await (await audit.next(timeout=10)).ack()
            await billing.close()
            await audit.close()
            for _ in range(100):
                if len(await client.dead_letters("refunds", "billing", limit=N)) == N:
                    break
                await asyncio.sleep(0.05)
            redriven = await client.redrive_ids("refunds", "billing")
            assert sorted(redriven) == sorted(ids)
        await asyncio.to_thread(broker.restart, crash=True)  # SIGKILL right after the reply

        async with tidings.connect(broker.url, timeout=20.0) as client:
            assert await client.dead_letters("refunds", "billing") == []
            assert await client.redrive("refunds", "billing") == 0
            billing = await client.subscribe("refunds", "billing", prefetch=N)
            audit = await client.subscribe("refunds", "audit", prefetch=N)
            got = []
            while len(got) < N:
                msg = await billing.next(timeout=10)
                assert msg is not None, f"only {len(got)} of {N} redriven messages came"
                got.append(msg.id)
                await msg.ack()
            assert sorted(got) == sorted(ids)
            assert await billing.next(timeout=1.0) is None  # each once
            assert await audit.next(timeout=0.5) is None  # and none to the other group
            await billing.close()
            await audit.close()
    finally:
        await asyncio.to_thread(broker.stop)
