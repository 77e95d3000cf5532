"""Process crashes (SIGKILL): acks are committed without later publishes, and confirmed
messages survive under every fsync policy."""

from __future__ import annotations

import asyncio

import pytest
from tests.helpers.broker_process import BrokerProcess

from tidings.model import GroupSpec, Outgoing, TopicSpec
from tidings.transports.tidings import NativeTransport


async def test_acks_are_committed_without_later_publishes(tmp_path):
    broker = BrokerProcess(tmp_path / "data", args=["--heartbeat", "1.0"])
    await asyncio.to_thread(broker.start)
    t = NativeTransport(broker.url, timeout=20.0, backoff_max=0.2)
    try:
        await t.connect()
        await t.create_topic(TopicSpec(name="t"))
        await t.publish("t", [Outgoing(b"m%d" % i) for i in range(10)])
        sub = await t.subscribe(GroupSpec(topic="t", name="g"), prefetch=20)
        got = []
        while len(got) < 10:
            got += await sub.next_batch(20, timeout=5)
        await asyncio.gather(*(m.ack() for m in got))
        await asyncio.sleep(0.5)  # well past one group commit; no publish follows
        await asyncio.to_thread(broker.restart, crash=True)
        again = await sub.next_batch(20, timeout=2.0)
        assert [m.body for m in again] == [], "acked messages came back after a crash"
        info = await t.group_info("t", "g")
        assert info.ready == 0 and info.in_flight == 0
    finally:
        await t.close()
        await asyncio.to_thread(broker.stop)


@pytest.mark.parametrize("fsync", ["batch", "interval", "never"])
async def test_confirmed_messages_survive_a_process_crash_under_every_fsync_policy(tmp_path, fsync):
    broker = BrokerProcess(tmp_path / "data", args=["--heartbeat", "1.0", "--fsync", fsync])
    await asyncio.to_thread(broker.start)
    t = NativeTransport(broker.url, timeout=20.0, backoff_max=0.2)
    try:
        await t.connect()
        await t.create_topic(TopicSpec(name="t"))
        await t.publish("t", [Outgoing(b"m%d" % i) for i in range(10)])
        await asyncio.sleep(0.3)  # a few fsync intervals
        await asyncio.to_thread(broker.restart, crash=True)
        assert (await t.topic_info("t")).messages == 10
    finally:
        await t.close()
        await asyncio.to_thread(broker.stop)
