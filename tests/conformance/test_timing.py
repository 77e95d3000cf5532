"""Conformance: TTL, delay and the dedup window on every transport."""

from __future__ import annotations

import asyncio
import time

import tidings
from tidings.transports.base import CAP_DELAY

from .scenarios import collect, expect_unsupported, lacks, quiet


async def test_expired_message_is_never_delivered(client: tidings.AsyncClient, topic: str):
    await client.create_topic(topic)
    await client.publish(topic, b"stale", ttl=0.5)
    await client.publish(topic, b"fresh")
    await asyncio.sleep(1.0)
    sub = await client.subscribe(topic, "g")
    got = await collect(sub, 1)
    assert [m.body for m in got] == [b"fresh"]
    assert await quiet(sub, 1.0) is None
    await sub.close()


async def test_delayed_message_waits(client: tidings.AsyncClient, topic: str) -> None:
    await client.create_topic(topic)
    if lacks(client, CAP_DELAY):  # amqp://: stock RabbitMQ has no delayed delivery
        await expect_unsupported(client.publish(topic, b"later", delay=1.5))
        return
    sub = await client.subscribe(topic, "g")
    published = time.monotonic()
    await client.publish(topic, b"later", delay=1.5)
    await client.publish(topic, b"now")
    first = await sub.next(timeout=5)
    assert first is not None and first.body == b"now"
    await first.ack()
    later = await sub.next(timeout=8)
    assert later is not None and later.body == b"later"
    assert time.monotonic() - published >= 1.4
    await later.ack()
    await sub.close()


async def test_duplicate_msg_id_is_stored_once(client: tidings.AsyncClient, topic: str) -> None:
    await client.create_topic(topic, dedup_window=60)
    first = await client.publish(topic, b"charge", msg_id="pay-1")
    second = await client.publish(topic, b"charge", msg_id="pay-1")
    assert not first.duplicate and second.duplicate
    assert (second.partition, second.offset) == (first.partition, first.offset)
    other = await client.publish(topic, b"charge", msg_id="pay-2")
    assert not other.duplicate
    sub = await client.subscribe(topic, "g")
    got = await collect(sub, 2)
    assert sorted(m.body for m in got) == [b"charge", b"charge"]
    assert await quiet(sub, 0.7) is None  # the duplicate was never stored
    await sub.close()
