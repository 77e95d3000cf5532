"""Conformance: a slow but healthy consumer keeps its leases (issue #12, part 1).

A lease starts when the broker hands a message to a member, so a message waiting in the
client's prefetch buffer used to burn its lease and a delivery there: with ``lease=2,
prefetch=10`` and 0.5 s of work each, 20 messages became ~50 deliveries and some dead-lettered
although the consumer never stopped. The client now extends the leases of what it buffers and
holds (batched), so the lease measures the application's processing, not its queue. The same
code runs on every transport.
"""

from __future__ import annotations

import asyncio
import time

import tidings
from tidings.errors import LeaseLost

from .scenarios import eventually, quiet


async def _slow_consume(sub: tidings.Subscription, count: int, work: float):
    deliveries: list[tidings.Message] = []
    lost = 0
    done: set[bytes] = set()
    deadline = time.monotonic() + 90
    while len(done) < count and time.monotonic() < deadline:
        msg = await sub.next(timeout=15)
        if msg is None:
            break
        deliveries.append(msg)
        await asyncio.sleep(work)  # the application's processing
        try:
            await msg.ack()
            done.add(msg.body)
        except LeaseLost:
            lost += 1
    return deliveries, lost, done


async def test_slow_consumer_keeps_its_prefetched_leases(
    client: tidings.AsyncClient, topic: str
) -> None:
    await client.create_topic(topic)
    await client.publish_many(topic, [tidings.Outgoing(b"%d" % i) for i in range(20)])
    # confirm_acks: an ack the broker refuses raises LeaseLost here instead of being logged
    sub = await client.subscribe(
        topic, "slow", lease=2, prefetch=10, max_deliveries=3, confirm_acks=True
    )
    deliveries, lost, done = await _slow_consume(sub, 20, 0.5)
    assert len(done) == 20
    assert lost == 0
    assert len(deliveries) == 20, [(m.body, m.delivery_count) for m in deliveries]
    assert all(m.delivery_count == 1 for m in deliveries)
    assert await quiet(sub, 2.5) is None  # nothing comes back once its lease is over

    async def settled() -> bool:
        info = await client.group_info(topic, "slow")
        return info.in_flight == 0 and info.ready == 0 and info.lag == 0

    assert await eventually(settled, 15)
    assert (await client.group_info(topic, "slow")).dead_lettered == 0
    await sub.close()


async def test_held_message_keeps_its_lease_until_settled(
    client: tidings.AsyncClient, topic: str
) -> None:
    """A raw client holding one message for three leases still owns it: no redelivery, and
    the ack is applied."""
    await client.create_topic(topic)
    await client.publish(topic, b"long-job")
    sub = await client.subscribe(topic, "hold", lease=1.0, confirm_acks=True)
    msg = await sub.next(timeout=10)
    assert msg is not None
    assert await quiet(sub, 3.0) is None  # three leases later: still ours
    await msg.ack()
    assert await quiet(sub, 1.5) is None
    await sub.close()


async def test_max_lease_extension_bounds_the_extension(
    client: tidings.AsyncClient, topic: str
) -> None:
    """Past ``max_lease_extension`` the lease is left to run out: the message comes back."""
    await client.create_topic(topic)
    await client.publish(topic, b"forgotten")
    sub = await client.subscribe(topic, "bounded", lease=1.0, max_lease_extension=1.5)
    first = await sub.next(timeout=10)
    assert first is not None and first.delivery_count == 1
    again = await sub.next(timeout=10)  # not settled: extended to ~2 s, then redelivered
    assert again is not None and again.body == b"forgotten" and again.delivery_count == 2
    await again.ack()
    await sub.close()
