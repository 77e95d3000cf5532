"""redis:// specifics the conformance suite does not reach: start positions (offset, time,
latest) and group reset, retention by count and age, overflow 'reject', leases and delays
longer than a lease (the hold set) or shorter (the idle time). Stuck members:
test_stuck_members.py."""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest

import tidings
from tidings.errors import TopicFull


async def _bodies(sub: tidings.Subscription, timeout: float = 1.0) -> list[bytes]:
    out = []
    while (msg := await sub.next(timeout=timeout)) is not None:
        out.append(msg.body)
        await msg.ack()
    return out


@pytest.fixture
async def client(redis_server):
    async with tidings.connect(redis_server.url) as c:
        yield c


@pytest.fixture
def topic() -> str:
    return f"pos.{secrets.token_hex(4)}"


async def test_start_positions_and_reset(client: tidings.AsyncClient, topic: str) -> None:
    await client.create_topic(topic)
    await client.publish_many(topic, [tidings.Outgoing(b"%d" % i) for i in range(5)])
    await asyncio.sleep(0.05)
    middle = time.time()
    await asyncio.sleep(0.05)
    await client.publish_many(topic, [tidings.Outgoing(b"%d" % i) for i in range(5, 8)])
    at3 = await client.subscribe(topic, "from-3", start=3)
    assert await _bodies(at3) == [b"3", b"4", b"5", b"6", b"7"]
    by_time = await client.subscribe(topic, "from-time", start=middle)
    assert await _bodies(by_time) == [b"5", b"6", b"7"]
    latest = await client.subscribe(topic, "new-only", start="latest")
    assert await _bodies(latest, 0.3) == []
    await client.publish(topic, b"8")
    assert await _bodies(latest) == [b"8"]
    await client.reset_group(topic, "from-3", start=7)
    assert await _bodies(at3) == [b"7", b"8"]
    for sub in (at3, by_time, latest):
        await sub.close()


async def test_retention_by_count_and_age_and_overflow(client: tidings.AsyncClient, topic: str):
    await client.create_topic(topic, max_messages=3)
    await client.publish_many(topic, [tidings.Outgoing(b"%d" % i) for i in range(6)])
    info = await client.topic_info(topic)
    assert info.messages == 3 and info.partitions[0].first_offset == 3
    full = topic + ".full"
    await client.create_topic(full, max_messages=2, overflow="reject")
    await client.publish_many(full, [tidings.Outgoing(b"a"), tidings.Outgoing(b"b")])
    with pytest.raises(TopicFull, match="overflow is 'reject'"):
        await client.publish(full, b"c")
    aged = topic + ".aged"
    await client.create_topic(aged, max_age=0.5)
    await client.publish_many(aged, [tidings.Outgoing(b"old") for _ in range(3)])
    await asyncio.sleep(0.8)
    await client.publish(aged, b"new")  # the publish trims what is older than max_age
    sub = await client.subscribe(aged, "g")
    assert await _bodies(sub) == [b"new"]
    await sub.close()


async def test_delays_and_extensions_around_one_lease(client: tidings.AsyncClient, topic: str):
    await client.create_topic(topic)
    sub = await client.subscribe(topic, "g", lease=2.0, max_lease_extension=0)
    await client.publish(topic, b"later", delay=3.0)  # longer than a lease: the hold set
    started = time.monotonic()
    msg = await sub.next(timeout=10)
    assert msg is not None and msg.body == b"later" and msg.delivery_count == 1
    assert time.monotonic() - started >= 2.8
    await msg.extend(0.3)  # shorter than the lease: redelivered after 0.3 s, not 2 s
    extended = time.monotonic()
    again = await sub.next(timeout=5)
    assert again is not None and again.delivery_count == 2
    assert 0.25 <= time.monotonic() - extended < 1.7
    await again.nack(delay=3.0)  # longer than a lease
    nacked = time.monotonic()
    assert await sub.next(timeout=2.5) is None
    third = await sub.next(timeout=5)
    assert third is not None and third.delivery_count == 3
    assert time.monotonic() - nacked >= 2.8
    await third.ack()
    info = await client.group_info(topic, "g")
    assert (info.ready, info.in_flight) == (0, 0)
    await sub.close()
