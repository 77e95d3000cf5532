"""Conformance: a stuck member is not re-fed its own expired messages (issue #12, part 2).

A member takes one message and then stops iterating while its connection stays alive (a
stuck loop). Its leases run out; before, the broker gave the credit of each expired lease back
to the same member and redelivered the messages to it, so on ``tidings://`` all 20 messages
reached the dead-letter topic and a healthy member that joined later received none. Credit
now comes back on settlement (ack, nack, reject), not on expiry: the stuck member stops
receiving and the healthy member gets everything, nothing dead-lettered. The same code runs on
every transport.
"""

from __future__ import annotations

import asyncio
import time

import tidings

from .scenarios import eventually


async def test_stuck_member_stops_receiving_and_a_healthy_one_gets_everything(
    client: tidings.AsyncClient, topic: str
) -> None:
    await client.create_topic(topic)
    await client.publish_many(topic, [tidings.Outgoing(b"%d" % i) for i in range(20)])
    # max_lease_extension=0: the client keeps no lease alive, so the broker sees what a stuck
    # consumer looks like once its client-side extension is over
    stuck = await client.subscribe(
        topic, "work", lease=1, prefetch=10, max_deliveries=3, max_lease_extension=0
    )
    first = await stuck.next(timeout=10)
    assert first is not None  # ... and it never iterates again
    await asyncio.sleep(3.5)  # three leases: before, the third redelivery dead-lettered
    healthy = await client.subscribe(
        topic, "work", lease=5, prefetch=10, max_deliveries=3, max_lease_extension=0
    )
    got: set[bytes] = set()
    deadline = time.monotonic() + 30
    while len(got) < 20 and time.monotonic() < deadline:
        msg = await healthy.next(timeout=5)
        if msg is None:
            break
        got.add(msg.body)
        await msg.ack()
    assert len(got) == 20, sorted(got)

    async def settled() -> bool:
        info = await client.group_info(topic, "work")
        return info.lag == 0 and info.in_flight == 0

    assert await eventually(settled, 10)
    assert (await client.group_info(topic, "work")).dead_lettered == 0
    await healthy.close()
    await stuck.close()
