"""SIGTERM: stop accepting, return leased messages, flush, exit 0."""

from __future__ import annotations

import asyncio

from tidings.model import GroupSpec, Outgoing, TopicSpec
from tidings.transports.tidings import NativeTransport


async def test_sigterm_returns_leases_and_exits_zero(fresh_broker, name):
    t = NativeTransport(fresh_broker.url, reconnect=False)
    await t.connect()
    await t.create_topic(TopicSpec(name=name))
    await t.publish(name, [Outgoing(b"%d" % i) for i in range(3)])
    sub = await t.subscribe(GroupSpec(topic=name, name="g", lease=300.0), prefetch=10)
    msgs = await sub.next_batch(3, timeout=5)
    while len(msgs) < 3:
        msgs += await sub.next_batch(3, timeout=5)
    await msgs[0].ack()  # two stay leased (for five minutes) when the broker stops
    assert await asyncio.to_thread(fresh_broker.stop) == 0
    log = fresh_broker.log()
    assert "shutting down" in log and "1 members left their groups" in log
    await t.close()

    fresh_broker.start()
    t2 = NativeTransport(fresh_broker.url)
    await t2.connect()
    try:
        sub2 = await t2.subscribe(GroupSpec(topic=name, name="g", lease=300.0), prefetch=10)
        got = await sub2.next_batch(10, timeout=5)
        while len(got) < 2:
            more = await sub2.next_batch(10, timeout=5)
            assert more, "the leased messages did not come back"
            got += more
        assert sorted(m.body for m in got) == [b"1", b"2"]  # at once, not after the lease
    finally:
        await t2.close()


async def test_clients_are_told_goodbye_and_reconnect(fresh_broker, name):
    t = NativeTransport(fresh_broker.url, timeout=20.0, backoff_max=0.3)
    await t.connect()
    try:
        await t.create_topic(TopicSpec(name=name))
        await asyncio.to_thread(fresh_broker.restart)
        assert name in [s.name for s in await t.list_topics()]
    finally:
        await t.close()
