"""Conformance: ``publish_async`` and coalesced single publishes, the same on every transport.

Futures resolve with the broker's receipts, fail with the broker's own error for their
message (one bad message fails only its own publish), and a producer's coalesced publishes
keep their order per key."""

from __future__ import annotations

import asyncio

import pytest

import tidings
from tidings.errors import Closed, MessageTooLarge, NotFound

from .scenarios import collect


async def test_futures_resolve_with_receipts_in_order(
    client: tidings.AsyncClient, topic: str
) -> None:
    await client.create_topic(topic)
    futures = [client.publish_async(topic, f"m{i}", key="k") for i in range(300)]
    assert all(isinstance(f, asyncio.Future) for f in futures)
    receipts = await asyncio.gather(*futures)
    assert all(isinstance(r, tidings.Receipt) and r.topic == topic for r in receipts)
    assert not any(r.duplicate for r in receipts)
    offsets = [r.offset for r in receipts]
    assert offsets == sorted(offsets) and len(set(offsets)) == 300
    assert len({r.id for r in receipts}) == 300
    sub = await client.subscribe(topic, "g", prefetch=300)
    got = await collect(sub, 300)
    assert [m.body for m in got] == [f"m{i}".encode() for i in range(300)]
    await sub.close()


async def test_concurrent_publishes_keep_order_per_key(
    client: tidings.AsyncClient, topic: str
) -> None:
    """Many concurrent awaited ``publish`` calls plus queued ``publish_async`` ones, spread
    over several batches: each key's messages arrive in the order they were published."""
    await client.create_topic(topic, partitions=3)
    keys = [f"key-{k}" for k in range(5)]
    sent = [(keys[i % 5], f"{keys[i % 5]}:{i}".encode()) for i in range(400)]
    first = [client.publish_async(topic, b, key=k) for k, b in sent[:200]]
    second = [asyncio.ensure_future(client.publish(topic, b, key=k)) for k, b in sent[200:]]
    receipts = await asyncio.gather(*first, *second)
    assert len(receipts) == 400
    sub = await client.subscribe(topic, "g", prefetch=400)
    got = await collect(sub, 400)
    for k in keys:
        assert [m.body for m in got if m.key == k] == [b for kk, b in sent if kk == k]
    await sub.close()


async def test_a_bad_message_fails_only_its_own_publish(
    client: tidings.AsyncClient, topic: str
) -> None:
    await client.create_topic(topic, max_message_size=1000)
    futures = [client.publish_async(topic, b"ok-%d" % i) for i in range(5)]
    too_big = client.publish_async(topic, b"x" * 5000)
    futures += [client.publish_async(topic, b"ok-%d" % i) for i in range(5, 10)]
    with pytest.raises(MessageTooLarge):
        await too_big
    receipts = await asyncio.gather(*futures)
    assert len({r.offset for r in receipts}) == 10
    sub = await client.subscribe(topic, "g", prefetch=20)
    got = await collect(sub, 10)
    assert sorted(m.body for m in got) == sorted(b"ok-%d" % i for i in range(10))
    await sub.close()


async def test_a_future_fails_with_the_brokers_error(
    client: tidings.AsyncClient, topic: str
) -> None:
    futures = [client.publish_async(f"{topic}.missing", b"m") for _ in range(3)]
    for fut in futures:
        with pytest.raises(NotFound):
            await fut
    with pytest.raises(NotFound):
        await client.publish(f"{topic}.missing", b"m")


async def test_flush_waits_for_every_answer(client: tidings.AsyncClient, topic: str) -> None:
    await client.create_topic(topic)
    futures = [client.publish_async(topic, b"%d" % i) for i in range(50)]
    await client.flush()
    assert all(f.done() and f.exception() is None for f in futures)
    assert (await client.topic_info(topic)).messages == 50


async def test_close_answers_queued_publishes_first(url: str, topic: str) -> None:
    client = await tidings.connect(url)
    await client.create_topic(topic)
    futures = [client.publish_async(topic, b"%d" % i) for i in range(20)]
    await client.close()
    assert all(f.done() and f.exception() is None for f in futures)
    with pytest.raises(Closed):
        client.publish_async(topic, b"late")
    async with tidings.connect(url) as again:
        assert (await again.topic_info(topic)).messages == 20


async def test_an_unconnected_client_connects_for_its_first_batch(url: str, topic: str) -> None:
    async with tidings.connect(url) as admin:
        await admin.create_topic(topic)
    client = tidings.connect(url)  # not connected yet
    futures = [client.publish_async(topic, b"%d" % i) for i in range(5)]
    receipts = await asyncio.gather(*futures)
    assert [r.topic for r in receipts] == [topic] * 5
    await client.close()
