"""Conformance: publish/consume, pub-sub, competing consumers, leases, nack, extend, reject,
dead-letter and at-most-once, the same on every transport."""

from __future__ import annotations

import asyncio
import time

import tidings
from tidings import headers as H

from .scenarios import collect, dead_letters, quiet


async def test_publish_and_consume(client: tidings.AsyncClient, topic: str) -> None:
    await client.create_topic(topic, partitions=2)
    sent = [f"m{i}".encode() for i in range(20)]
    receipts = await client.publish_many(topic, [tidings.Outgoing(b, key=b.decode()) for b in sent])
    assert len(receipts) == 20 and all(r.topic == topic for r in receipts)
    assert {r.partition for r in receipts} <= {0, 1}
    sub = await client.subscribe(topic, "g")
    got = await collect(sub, 20)
    assert sorted(m.body for m in got) == sorted(sent)
    assert all(m.delivery_count == 1 and m.topic == topic for m in got)
    assert await quiet(sub, 0.5) is None  # acked: nothing comes back
    await sub.close()


async def test_every_group_gets_every_message(client: tidings.AsyncClient, topic: str) -> None:
    await client.create_topic(topic)
    a = await client.subscribe(topic, "billing")
    b = await client.subscribe(topic, "audit")
    await client.publish_many(topic, [tidings.Outgoing(b"%d" % i) for i in range(10)])
    got_a = await collect(a, 10)
    got_b = await collect(b, 10)
    assert sorted(m.body for m in got_a) == sorted(m.body for m in got_b)
    assert len(got_a) == 10
    await a.close()
    await b.close()


async def test_members_of_a_group_compete(client: tidings.AsyncClient, topic: str) -> None:
    await client.create_topic(topic)
    first = await client.subscribe(topic, "workers", prefetch=1)
    second = await client.subscribe(topic, "workers", prefetch=1)
    await client.publish_many(topic, [tidings.Outgoing(b"%d" % i) for i in range(20)])
    seen: list[bytes] = []
    per_member = {"first": 0, "second": 0}

    async def work(name: str, sub: tidings.Subscription) -> None:
        while len(seen) < 20:
            msg = await sub.next(timeout=0.5)
            if msg is None:
                continue
            await asyncio.sleep(0.01)  # a little work, so both members take a share
            seen.append(msg.body)
            per_member[name] += 1
            await msg.ack()

    await asyncio.wait_for(asyncio.gather(work("first", first), work("second", second)), 20)
    assert sorted(seen) == sorted(b"%d" % i for i in range(20))  # each exactly once
    assert per_member["first"] > 0 and per_member["second"] > 0
    await first.close()
    await second.close()


async def test_expired_lease_redelivers_with_count(client: tidings.AsyncClient, topic: str):
    await client.create_topic(topic)
    # max_lease_extension=0: this client never extends, as one that stopped (or crashed) would
    sub = await client.subscribe(topic, "g", lease=1.0, max_lease_extension=0)
    await client.publish(topic, b"slow")
    msg = await sub.next(timeout=5)
    assert msg is not None and msg.delivery_count == 1
    again = await sub.next(timeout=6)  # not acked: the lease runs out
    assert again is not None and again.body == b"slow" and again.delivery_count == 2
    await again.ack()
    await sub.close()


async def test_nack_with_delay(client: tidings.AsyncClient, topic: str) -> None:
    await client.create_topic(topic)
    sub = await client.subscribe(topic, "g", lease=30)
    await client.publish(topic, b"retry-me")
    msg = await sub.next(timeout=5)
    assert msg is not None
    nacked_at = time.monotonic()
    await msg.nack(delay=1.5, error="downstream busy")
    assert await quiet(sub, 0.8) is None  # invisible during the delay
    again = await sub.next(timeout=8)
    assert again is not None and again.body == b"retry-me"
    assert again.delivery_count == 2
    assert time.monotonic() - nacked_at >= 1.3
    await again.ack()
    await sub.close()


async def test_extend_keeps_the_lease(client: tidings.AsyncClient, topic: str) -> None:
    await client.create_topic(topic)
    sub = await client.subscribe(topic, "g", lease=1.0)
    await client.publish(topic, b"long-job")
    msg = await sub.next(timeout=5)
    assert msg is not None
    await msg.extend(4)
    assert await quiet(sub, 2.0) is None  # past the original lease, still ours
    await msg.ack()
    assert await quiet(sub, 1.5) is None
    await sub.close()


async def test_reject_dead_letters_at_once(client: tidings.AsyncClient, topic: str) -> None:
    await client.create_topic(topic)
    sub = await client.subscribe(topic, "g")
    await client.publish(topic, b"poison", key="k1", headers={"trace": "t-1"}, msg_id="p-1")
    msg = await sub.next(timeout=5)
    assert msg is not None
    await msg.reject("cannot parse")
    dlq = await dead_letters(client, topic, "g")
    dead = await dlq.next(timeout=10)
    assert dead is not None and dead.body == b"poison" and dead.key == "k1"
    assert dead.headers["trace"] == "t-1"
    assert dead.headers[H.DLQ_REASON] == "rejected"
    assert dead.headers[H.DLQ_TOPIC] == topic
    assert dead.headers[H.DLQ_GROUP] == "g"
    assert dead.headers[H.DLQ_ERROR] == "cannot parse"
    assert dead.headers[H.DLQ_OFFSET] == str(msg.offset)
    assert dead.headers[H.DLQ_ID] == msg.id
    assert dead.headers[H.DLQ_MSG_ID] == "p-1"
    await dead.ack()
    assert await quiet(sub, 0.5) is None
    await sub.close()
    await dlq.close()


async def test_max_deliveries_dead_letters(client: tidings.AsyncClient, topic: str) -> None:
    await client.create_topic(topic)
    sub = await client.subscribe(topic, "g", max_deliveries=3)
    await client.publish(topic, b"always-fails")
    counts = []
    for _ in range(3):
        msg = await sub.next(timeout=10)
        assert msg is not None
        counts.append(msg.delivery_count)
        await msg.nack(error=f"failure {msg.delivery_count}")
    assert counts == [1, 2, 3]
    assert await quiet(sub, 1.0) is None  # no fourth delivery
    dlq = await dead_letters(client, topic, "g")
    dead = await dlq.next(timeout=10)
    assert dead is not None and dead.body == b"always-fails"
    assert dead.headers[H.DLQ_REASON] == "max-deliveries"
    assert dead.headers[H.DLQ_DELIVERIES] == "3"
    assert dead.headers[H.DLQ_ERROR] == "failure 3"
    await sub.close()
    await dlq.close()


async def test_expired_last_lease_reaches_dead_letter(client: tidings.AsyncClient, topic: str):
    await client.create_topic(topic)
    sub = await client.subscribe(topic, "g", max_deliveries=2, lease=1.0, max_lease_extension=0)
    await client.publish(topic, b"hangs")
    first = await sub.next(timeout=5)
    second = await sub.next(timeout=8)
    assert first is not None and second is not None and second.delivery_count == 2
    dlq = await dead_letters(client, topic, "g")
    dead = await dlq.next(timeout=15)  # the second lease expires too: it must not stay stuck
    assert dead is not None and dead.body == b"hangs"
    assert dead.headers[H.DLQ_REASON] == "max-deliveries"
    await sub.close()
    await dlq.close()


async def test_at_most_once(client: tidings.AsyncClient, topic: str) -> None:
    await client.create_topic(topic)
    sub = await client.subscribe(topic, "fire-and-forget", auto_ack=True, lease=1.0)
    await client.publish_many(topic, [tidings.Outgoing(b"%d" % i) for i in range(5)])
    got = await collect(sub, 5, ack=False)
    assert len(got) == 5
    assert await quiet(sub, 2.0) is None  # never redelivered, though nothing was acked
    await sub.close()
    again = await client.subscribe(topic, "fire-and-forget", auto_ack=True)
    assert await quiet(again, 1.0) is None
    await again.close()
