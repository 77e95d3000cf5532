"""Ordered groups on a real nats-server: exclusive partitions, order, rebalancing, failover."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

from tidings.model import GroupSpec, Outgoing, TopicSpec

KEYS = [f"key-{i}" for i in range(8)]


def spec(topic, **kw):
    kw.setdefault("lease", 2.0)
    kw.setdefault("session_timeout", 1.5)
    return GroupSpec(topic=topic, name="ordered", mode="ordered", **kw)


async def publish_sequences(transport, topic, per_key, start=0):
    batch = [
        Outgoing(f"{k}:{i}".encode(), key=k) for i in range(start, start + per_key) for k in KEYS
    ]
    await transport.publish(topic, batch)


def check_order(seen: dict[str, list[int]], per_key: int) -> None:
    """Per key: in order; a redelivery may repeat the last message, never skip back further."""
    for key in KEYS:
        deduped = [n for i, n in enumerate(seen[key]) if i == 0 or n != seen[key][i - 1]]
        assert deduped == list(range(per_key)), (key, seen[key])


async def consume(sub, seen, stop_after=None, idle=2.0, ack=True):
    n = 0
    while stop_after is None or n < stop_after:
        m = await sub.next(timeout=idle)
        if m is None:
            return n
        key, i = m.body.decode().split(":")
        seen[key].append(int(i))
        n += 1
        if ack:
            await m.ack()
    return n


async def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_single_member_gets_every_partition_in_order(transport, name):
    topic = name("ord")
    await transport.create_topic(TopicSpec(name=topic, partitions=4))
    await publish_sequences(transport, topic, 10)
    sub = await transport.subscribe(spec(topic))
    assert sub.partitions == [0, 1, 2, 3]
    seen = defaultdict(list)
    assert await consume(sub, seen, idle=1.0) == 80
    check_order(seen, 10)


async def test_in_flight_window_and_resume_from_last_ack(connect, name):
    a = await connect()
    topic = name("window")
    await a.create_topic(TopicSpec(name=topic, partitions=1))
    await a.publish(topic, [Outgoing(str(i).encode()) for i in range(6)])
    sub = await a.subscribe(spec(topic, in_flight_per_partition=2))
    m0, m1 = await sub.next(timeout=5), await sub.next(timeout=5)
    assert (m0.body, m1.body) == (b"0", b"1")
    assert await sub.next(timeout=0.5) is None  # window full
    await m0.ack()
    m2 = await sub.next(timeout=5)
    assert m2.body == b"2"
    await m1.ack()
    await m2.ack()
    await sub.close()
    b = await connect()
    sub = await b.subscribe(spec(topic, in_flight_per_partition=2))
    assert (await sub.next(timeout=5)).body == b"3"  # resumes after the last ack


async def test_rebalance_when_members_join_and_leave(connect, name):
    a, b = await connect(), await connect()
    topic = name("rebal")
    await a.create_topic(TopicSpec(name=topic, partitions=4))
    sa = await a.subscribe(spec(topic))
    assert sa.partitions == [0, 1, 2, 3]
    sb = await b.subscribe(spec(topic))
    await wait_for(lambda: len(sa.partitions) == 2 and len(sb.partitions) == 2)
    assert sorted(sa.partitions + sb.partitions) == [0, 1, 2, 3]
    await publish_sequences(a, topic, 10)
    seen = defaultdict(list)
    got_a, got_b = await asyncio.gather(consume(sa, seen, idle=1.5), consume(sb, seen, idle=1.5))
    assert got_a > 0 and got_b > 0
    check_order(seen, 10)

    # b leaves mid-stream: a takes everything over at once and order still holds
    await publish_sequences(a, topic, 10, start=10)
    seen2 = defaultdict(list)
    await consume(sb, seen2, stop_after=5)
    await sb.close()
    await wait_for(lambda: sa.partitions == [0, 1, 2, 3], timeout=5)
    await consume(sa, seen2, idle=1.5)
    for key in KEYS:
        assert [n for n in seen2[key]] == sorted(seen2[key])
        assert set(seen2[key]) == set(range(10, 20))
    assert (await a.group_info(topic, "ordered")).lag == 0


async def test_failover_when_a_member_dies(connect, name):
    a, b = await connect(), await connect()
    topic = name("dies")
    await a.create_topic(TopicSpec(name=topic, partitions=2))
    sa = await a.subscribe(spec(topic))
    sb = await b.subscribe(spec(topic))
    await wait_for(lambda: len(sa.partitions) == 1 and len(sb.partitions) == 1)
    await publish_sequences(a, topic, 5)
    seen = defaultdict(list)
    # b takes one message and dies holding it: no ack, no goodbye, no more heartbeats.
    held = await sb.next(timeout=5)
    key, i = held.body.decode().split(":")
    seen[key].append(int(i))
    died = time.monotonic()
    await b.nc.close()
    await wait_for(lambda: sa.partitions == [0, 1], timeout=6)
    assert time.monotonic() - died < 1.5 + 1.5  # session timeout + one check interval
    await consume(sa, seen, idle=3.0)  # b's message comes back when its lease expires
    check_order(seen, 5)
