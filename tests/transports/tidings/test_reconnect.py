"""Reconnecting: a broker restart, a dropped connection mid-publish, timeouts, giving up."""

from __future__ import annotations

import asyncio

import pytest
from tests.helpers.proxy import FaultyProxy

from tidings.errors import ConnectionLost, Timeout
from tidings.model import GroupSpec, Outgoing, TopicSpec
from tidings.protocol import constants as c
from tidings.protocol import messages as m
from tidings.transports.base import SubscribeOptions
from tidings.transports.tidings import NativeTransport


async def _bodies(sub, want: set[bytes], timeout: float = 15.0) -> set[bytes]:
    got: set[bytes] = set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not want <= got and loop.time() < deadline:
        for msg in await sub.next_batch(100, timeout=0.5):
            got.add(msg.body)
            try:
                await msg.ack()
            except ConnectionLost:
                pass  # delivered again later
    return got


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "sigkill"])
async def test_subscription_resumes_after_broker_restart(fresh_broker, name, crash):
    t = NativeTransport(fresh_broker.url, timeout=30.0, backoff_max=0.5)
    await t.connect()
    try:
        await t.create_topic(TopicSpec(name=name))
        sub = await t.subscribe(GroupSpec(topic=name, name="g"), prefetch=10)
        before = {b"before-%d" % i for i in range(20)}
        await t.publish(name, [Outgoing(b) for b in sorted(before)])  # confirmed = durable
        first = await _bodies(sub, {b"before-0"}, timeout=5)
        assert first
        await asyncio.to_thread(fresh_broker.restart, crash=crash)
        after = {b"after-%d" % i for i in range(10)}
        await t.publish(name, [Outgoing(b) for b in sorted(after)])  # waits for the reconnect
        got = first | await _bodies(sub, (before - first) | after)
        assert before | after <= got, "a confirmed message was lost across the restart"
    finally:
        await t.close()


async def test_publish_retried_after_a_dropped_connection_is_not_duplicated(broker, name):
    proxy = FaultyProxy(broker.url)
    url = await proxy.start()
    observer = NativeTransport(broker.url)
    t = NativeTransport(url, timeout=20.0, backoff_initial=0.01)
    try:
        await observer.connect()
        await t.connect()
        await t.create_topic(TopicSpec(name=name))
        proxy.hold_replies = True  # the broker gets the publish; its answer never comes back
        publishing = asyncio.create_task(t.publish(name, [Outgoing(b"exactly-once")]))
        for _ in range(100):
            if (await observer.topic_info(name)).messages == 1:
                break
            await asyncio.sleep(0.02)
        assert (await observer.topic_info(name)).messages == 1
        proxy.hold_replies = False
        proxy.cut()  # the client reconnects and sends the publish again
        [receipt] = await publishing
        assert receipt.duplicate  # the broker recognised the producer id
        assert (await observer.topic_info(name)).messages == 1
    finally:
        await t.close()
        await observer.close()
        await proxy.close()


async def test_operation_timeout(broker, name):
    proxy = FaultyProxy(broker.url)
    url = await proxy.start()
    t = NativeTransport(url, timeout=0.3)
    try:
        await t.connect()
        proxy.hold_replies = True
        with pytest.raises(Timeout, match=r"took longer than 0\.3s"):
            await t.list_topics()
    finally:
        await t.close()
        await proxy.close()


async def test_gives_up_after_reconnect_timeout(broker, name):
    proxy = FaultyProxy(broker.url)
    url = await proxy.start()
    t = NativeTransport(url, reconnect_timeout=0.5, backoff_initial=0.05, timeout=10.0)
    await t.connect()
    await t.create_topic(TopicSpec(name=name))
    sub = await t.subscribe(GroupSpec(topic=name, name="g"))
    await proxy.close()  # the "broker" is gone for good
    with pytest.raises(ConnectionLost, match="gave up reconnecting"):
        await t.list_topics()
    with pytest.raises(ConnectionLost):
        await sub.next(timeout=5)
    await t.close()


async def test_settling_a_message_from_a_lost_connection_raises_lease_lost(broker, name):
    from tidings.errors import LeaseLost

    proxy = FaultyProxy(broker.url)
    url = await proxy.start()
    t = NativeTransport(url, backoff_initial=0.01)
    try:
        await t.connect()
        await t.create_topic(TopicSpec(name=name))
        await t.publish(name, [Outgoing(b"m")])
        sub = await t.subscribe(GroupSpec(topic=name, name="g"))
        msg = await sub.next(timeout=5)
        proxy.cut()
        again = await sub.next(timeout=10)  # re-joined; the lease was released: redelivered
        assert again.body == b"m"
        with pytest.raises(LeaseLost):
            await msg.ack()
        await again.ack()
    finally:
        await t.close()
        await proxy.close()


async def test_settle_and_custom_timeouts(broker, name):
    proxy = FaultyProxy(broker.url)
    url = await proxy.start()
    t = NativeTransport(url, timeout=0.3)
    try:
        await t.connect()
        await t.create_topic(TopicSpec(name=name))
        await t.publish(name, [Outgoing(b"a"), Outgoing(b"b")])
        sub = await t.subscribe(
            GroupSpec(topic=name, name="g"),
            prefetch=10,
            options=SubscribeOptions(confirm_acks=True),
        )
        msgs: list = []
        while len(msgs) < 2:
            msgs += await sub.next_batch(10, timeout=5)
        proxy.hold_replies = True
        loop = asyncio.get_running_loop()
        started = loop.time()
        results = await asyncio.gather(*(m.ack() for m in msgs), return_exceptions=True)
        assert all(isinstance(r, Timeout) for r in results), results
        assert 0.25 < loop.time() - started < 2.0
        with pytest.raises(Timeout, match=r"LIST_TOPICS"):  # a timeout of its own: own timer
            await t.call(c.LIST_TOPICS, m.Empty(), timeout=0.2)
    finally:
        await t.close()
        await proxy.close()
