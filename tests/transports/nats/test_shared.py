"""Shared groups on a real nats-server: competing members, leases, nack, extend, credit."""

from __future__ import annotations

import asyncio
import time

import pytest

from tidings.errors import LeaseLost
from tidings.model import GroupSpec, Outgoing, TopicSpec
from tidings.transports.base import SubscribeOptions


async def test_competing_members_share_the_work(connect, name):
    a, b = await connect(), await connect()
    topic = name("work")
    await a.create_topic(TopicSpec(name=topic, partitions=2))
    spec = GroupSpec(topic=topic, name="workers")
    sa = await a.subscribe(spec, prefetch=5)
    sb = await b.subscribe(spec, prefetch=5)
    await a.publish(topic, [Outgoing(str(i).encode()) for i in range(200)])
    seen: dict[str, list[bytes]] = {"a": [], "b": []}

    async def work(label, sub):
        while True:
            m = await sub.next(timeout=1.5)
            if m is None:
                return
            seen[label].append(m.body)
            await asyncio.sleep(0.001)
            await m.ack()

    await asyncio.gather(work("a", sa), work("b", sb))
    assert sorted(seen["a"] + seen["b"], key=int) == [str(i).encode() for i in range(200)]
    assert seen["a"] and seen["b"]  # both members got work
    assert (await a.group_info(topic, "workers")).members == 2


async def test_prefetch_limits_what_a_member_holds(transport, name):
    topic = name("credit")
    await transport.create_topic(TopicSpec(name=topic))
    await transport.publish(topic, [Outgoing(b"x") for _ in range(50)])
    sub = await transport.subscribe(GroupSpec(topic=topic, name="g"), prefetch=3)
    held = [await sub.next(timeout=5) for _ in range(3)]
    await asyncio.sleep(0.3)
    info = await transport.group_info(topic, "g")
    assert info.in_flight == 3 and info.ready == 47
    for m in held:
        await m.ack()


async def test_expired_lease_is_redelivered(connect, name):
    a, b = await connect(), await connect()
    topic = name("lease")
    await a.create_topic(TopicSpec(name=topic))
    await a.publish(topic, [Outgoing(b"job")])
    spec = GroupSpec(topic=topic, name="g", lease=1.0)
    # holds the job, so it pulls nothing more; never extends, like a client that hung
    sa = await a.subscribe(spec, prefetch=1, options=SubscribeOptions(max_lease_extension=0))
    first = await sa.next(timeout=5)
    received = time.monotonic()
    assert first.delivery_count == 1
    sb = await b.subscribe(spec)
    # After ~1 s the lease expires. Either member may take the redelivery (a's credit comes
    # back with the expiry too), so wait on both; whoever gets it sees delivery 2.
    waits = {asyncio.ensure_future(sa.next(timeout=6)), asyncio.ensure_future(sb.next(timeout=6))}
    done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    again = done.pop().result()
    assert again is not None and again.body == b"job" and again.delivery_count == 2
    # The client times a lease from when it received the message, later than the server
    # sent it: on a loaded machine the redelivery can come before a's own clock says expired
    await asyncio.sleep(max(0.0, received + 1.0 - time.monotonic()))
    with pytest.raises(LeaseLost):
        await first.ack()
    await again.ack()


async def test_nack_with_delay(transport, name):
    topic = name("nack")
    await transport.create_topic(TopicSpec(name=topic))
    await transport.publish(topic, [Outgoing(b"retry")])
    sub = await transport.subscribe(GroupSpec(topic=topic, name="g"))
    m = await sub.next(timeout=5)
    t0 = time.monotonic()
    await m.nack(delay=0.8)
    assert await sub.next(timeout=0.5) is None
    m = await sub.next(timeout=5)
    assert m.body == b"retry" and m.delivery_count == 2
    assert time.monotonic() - t0 >= 0.75
    await m.nack()  # no delay: back at once
    m = await sub.next(timeout=2)
    assert m.delivery_count == 3
    await m.ack()


async def test_extend_keeps_the_lease(connect, name):
    a, b = await connect(), await connect()
    topic = name("extend")
    await a.create_topic(TopicSpec(name=topic))
    await a.publish(topic, [Outgoing(b"slow")])
    spec = GroupSpec(topic=topic, name="g", lease=0.8)
    sa = await a.subscribe(spec, prefetch=1)
    sb = await b.subscribe(spec)
    m = await sa.next(timeout=5)
    for _ in range(3):  # 1.8 s of work in total, past two original leases
        await asyncio.sleep(0.6)
        await m.extend(1.0)
    assert await sb.next(timeout=0.1) is None
    await m.ack()
    assert await sb.next(timeout=1.5) is None  # acked: never redelivered


async def test_extend_can_shorten_the_lease(connect, name):
    a, b = await connect(), await connect()
    topic = name("shorten")
    await a.create_topic(TopicSpec(name=topic))
    await a.publish(topic, [Outgoing(b"short")])
    spec = GroupSpec(topic=topic, name="g", lease=30)
    sa = await a.subscribe(spec, prefetch=1)
    m = await sa.next(timeout=5)
    await m.extend(0.3)  # invisible for 0.3 s from now, not for the 30 s lease
    sb = await b.subscribe(spec)
    again = await sb.next(timeout=3)
    assert again is not None and again.body == b"short" and again.delivery_count == 2
    await again.ack()


async def test_close_returns_unacked_messages(connect, name):
    a, b = await connect(), await connect()
    topic = name("close")
    await a.create_topic(TopicSpec(name=topic))
    await a.publish(topic, [Outgoing(b"1"), Outgoing(b"2")])
    spec = GroupSpec(topic=topic, name="g", lease=30)
    sa = await a.subscribe(spec)
    assert (await sa.next(timeout=5)).body == b"1"
    await sa.close()
    sb = await b.subscribe(spec)
    got = sorted([(await sb.next(timeout=3)).body for _ in range(2)])
    assert got == [b"1", b"2"]  # at once, not after the 30 s lease
