"""Conformance: ordered groups (per-partition order, rebalancing when a member goes) and
key-ordered shared groups."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest

import tidings
from tidings.transports.base import CAP_KEY_ORDERED, CAP_ORDERED

from .scenarios import expect_unsupported, lacks


def keyed_batch(start: int, count: int, keys: int = 6) -> list[tidings.Outgoing]:
    return [
        tidings.Outgoing(f"{i % keys}:{i}".encode(), key=f"k{i % keys}")
        for i in range(start, start + count)
    ]


def assert_key_order(bodies: list[bytes]) -> None:
    last: dict[str, int] = {}
    for body in bodies:
        key, seq = body.decode().split(":")
        assert int(seq) > last.get(key, -1), f"key {key} out of order at {seq}"
        last[key] = int(seq)


async def test_ordered_group_keeps_key_order_and_rebalances(
    client: tidings.AsyncClient, topic: str
) -> None:
    await client.create_topic(topic, partitions=4)
    if lacks(client, CAP_ORDERED):  # redis:// (see docs/transports.md)
        await expect_unsupported(client.subscribe(topic, "ordered", mode="ordered"))
        return
    a = await client.subscribe(topic, "ordered", mode="ordered", prefetch=10, lease=5)
    b = await client.subscribe(topic, "ordered", mode="ordered", prefetch=10, lease=5)
    await client.publish_many(topic, keyed_batch(0, 60))
    acked: list[bytes] = []
    by_member: dict[str, list[bytes]] = defaultdict(list)

    expected = sorted(m.body for m in keyed_batch(0, 100))

    async def drain(name: str, sub: tidings.Subscription, limit: int | None) -> None:
        # Without a limit: until every message was acked. The idle wait outlasts the lease (5 s):
        # what b had pulled but not handed out comes back by nak or, at worst, lease expiry.
        taken = 0
        while (limit is None and len(acked) < len(expected)) or (limit and taken < limit):
            msg = await sub.next(timeout=2.0 if limit else 8.0)
            if msg is None:
                return
            by_member[name].append(msg.body)
            acked.append(msg.body)
            await msg.ack()
            taken += 1

    # b handles a few messages, then goes away; a must take over b's partitions.
    await asyncio.wait_for(asyncio.gather(drain("a", a, 10), drain("b", b, 10)), 30)
    await b.close()
    await client.publish_many(topic, keyed_batch(60, 40))
    await asyncio.wait_for(drain("a", a, None), 60)
    assert sorted(acked) == expected  # nothing skipped, nothing twice
    assert_key_order(by_member["a"])
    assert_key_order(by_member["b"])
    assert_key_order(acked)
    await a.close()


async def test_key_ordered_shared_group(client: tidings.AsyncClient, topic: str) -> None:
    await client.create_topic(topic)
    if lacks(client, CAP_KEY_ORDERED):
        await expect_unsupported(client.subscribe(topic, "lanes", key_ordered=True))
        return
    one = await client.subscribe(topic, "lanes", key_ordered=True, prefetch=5)
    two = await client.subscribe(topic, "lanes", key_ordered=True, prefetch=5)
    await client.publish_many(topic, keyed_batch(0, 48, keys=4))
    in_flight: set[str] = set()
    order: list[bytes] = []
    violations: list[str] = []

    async def work(sub: tidings.Subscription) -> None:
        while len(order) < 48:
            msg = await sub.next(timeout=0.5)
            if msg is None:
                continue
            if msg.key in in_flight:
                violations.append(msg.key or "")
            in_flight.add(msg.key or "")
            await asyncio.sleep(0.005)
            order.append(msg.body)
            in_flight.discard(msg.key or "")
            await msg.ack()

    await asyncio.wait_for(asyncio.gather(work(one), work(two)), 30)
    assert not violations, f"keys in flight twice: {violations}"
    assert_key_order(order)
    await one.close()
    await two.close()


@pytest.mark.parametrize("window", [3])
async def test_ordered_window_keeps_order(
    client: tidings.AsyncClient, topic: str, window: int
) -> None:
    await client.create_topic(topic, partitions=2)
    if lacks(client, CAP_ORDERED):
        await expect_unsupported(client.subscribe(topic, "w", mode="ordered"))
        return
    sub = await client.subscribe(
        topic, "w", mode="ordered", in_flight_per_partition=window, prefetch=50
    )
    await client.publish_many(topic, keyed_batch(0, 40, keys=2))
    bodies = []
    for _ in range(40):
        msg = await sub.next(timeout=10)
        assert msg is not None
        bodies.append(msg.body)
        await msg.ack()
    assert_key_order(bodies)
    await sub.close()
