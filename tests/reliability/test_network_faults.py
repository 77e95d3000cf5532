"""Network faults between clients and the broker (tests/reliability/netem.py): latency,
partitions, half-open connections, resets. Clients reconnect and resume, retried publishes
are deduplicated by their producer ids, leases of dead clients come back, and nothing is
lost."""

from __future__ import annotations

import asyncio
import time

import pytest
from tests.helpers.broker_process import BrokerProcess

from tidings.client import AsyncClient
from tidings.errors import RequestTimeout, TidingsError, Timeout
from tidings.model import GroupSpec, Outgoing, TopicSpec
from tidings.transports.tidings import NativeTransport

from .netem import NetemProxy

HEARTBEAT = 1.0  # both sides: a silent peer is dead after 3 s


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    proc = BrokerProcess(tmp_path_factory.mktemp("net"), args=["--heartbeat", str(HEARTBEAT)])
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
async def proxy(broker):
    p = NetemProxy(broker.url)
    url = await p.start()
    p.url = url
    yield p
    await p.close()


def _client(url: str, **options) -> NativeTransport:
    return NativeTransport(
        url, **{"timeout": 30.0, "backoff_initial": 0.05, "backoff_max": 0.5, **options}
    )


async def test_partition_then_heal_loses_and_duplicates_nothing(broker, proxy):
    topic = "partitioned"
    observer = _client(broker.url)
    producer = _client(proxy.url)
    consumer = _client(proxy.url)
    await observer.connect()
    await producer.connect()
    await consumer.connect()
    try:
        await observer.create_topic(TopicSpec(name=topic))
        sub = await consumer.subscribe(GroupSpec(topic=topic, name="g"), prefetch=20)
        acked: set[bytes] = set()

        async def consume() -> None:
            while len(acked) < 150:
                try:
                    for msg in await sub.next_batch(20, timeout=0.5):
                        await msg.ack()
                        acked.add(msg.body)
                except TidingsError:
                    pass  # lease lost with the connection: redelivered

        consuming = asyncio.create_task(consume())
        for i in range(150):
            if i == 50:
                healing = asyncio.create_task(proxy.partition(4.0))
            await producer.publish(topic, [Outgoing(b"%d" % i)])  # waits out the partition
        await healing
        await asyncio.wait_for(consuming, 30)
        assert acked == {b"%d" % i for i in range(150)}
        info = await observer.topic_info(topic)
        assert info.messages == 150, "a retried publish was stored twice"
    finally:
        for t in (observer, producer, consumer):
            await t.close()


async def test_pending_publish_during_a_partition_is_retried_and_deduplicated(broker, proxy):
    topic = "retried"
    observer = _client(broker.url)
    producer = _client(proxy.url)
    await observer.connect()
    await producer.connect()
    try:
        await observer.create_topic(TopicSpec(name=topic))
        link = proxy.links[-1]
        # the request reaches the broker but the receipt is lost: silence only the way back
        original = link.client.write
        link.client.write = lambda data: None
        publishing = asyncio.create_task(producer.publish(topic, [Outgoing(b"once")]))
        for _ in range(100):
            if (await observer.topic_info(topic)).messages == 1:
                break
            await asyncio.sleep(0.05)
        link.client.write = original
        proxy.blackhole(link)  # the client's heartbeat check declares it dead and reconnects
        [receipt] = await asyncio.wait_for(publishing, 20)
        assert receipt.duplicate
        assert (await observer.topic_info(topic)).messages == 1
    finally:
        await observer.close()
        await producer.close()


async def test_a_dead_clients_leases_return_within_the_session_timeout(broker, proxy):
    topic = "leases"
    healthy = _client(broker.url)
    doomed = _client(proxy.url, reconnect=False)
    await healthy.connect()
    await doomed.connect()
    try:
        await healthy.create_topic(TopicSpec(name=topic))
        await healthy.publish(topic, [Outgoing(b"%d" % i) for i in range(5)])
        spec = GroupSpec(topic=topic, name="g", lease=60.0)  # far longer than the test
        held = await doomed.subscribe(spec, prefetch=5)
        assert len(await held.next_batch(5, timeout=5)) == 5
        proxy.blackhole(proxy.links[-1])  # the client's host vanished: no FIN, no RST
        started = time.monotonic()
        other = await healthy.subscribe(spec, prefetch=5)
        got = []
        while len(got) < 5 and time.monotonic() - started < 10:
            got += await other.next_batch(5, timeout=0.5)
        elapsed = time.monotonic() - started
        assert sorted(m.body for m in got) == [b"%d" % i for i in range(5)]
        assert elapsed < 3 * HEARTBEAT + 2, f"leases came back after {elapsed:.1f}s"
        for m in got:
            await m.ack()
    finally:
        await healthy.close()
        await doomed.close()


async def test_latency_slows_but_does_not_break(broker, proxy):
    proxy.latency = 0.05
    t = _client(proxy.url, timeout=0.3)
    await t.connect()
    try:
        await t.create_topic(TopicSpec(name="slow"))
        receipts = await t.publish("slow", [Outgoing(b"%d" % i) for i in range(100)])
        assert len(receipts) == 100
        assert 0.09 < await t.ping() < 0.3
        proxy.latency = 0.5  # now longer than the operation timeout
        with pytest.raises(Timeout, match=r"took longer than 0\.3s"):
            await t.ping()
        proxy.latency = 0.0
        await asyncio.sleep(1.2)  # the late pong arrives and is ignored
        assert await t.ping() < 0.3
    finally:
        await t.close()


async def test_request_reply_times_out_cleanly_across_a_partition(broker, proxy):
    client = AsyncClient(proxy.url, timeout=10.0, backoff_max=0.2)
    await client.connect()
    try:
        await client.transport.create_topic(TopicSpec(name="svc"))
        started = time.monotonic()
        with pytest.raises(RequestTimeout, match="no reply"):
            await client.request("svc", b"ping?", timeout=1.0)  # no responder at all
        assert time.monotonic() - started < 2.0
        partition = asyncio.create_task(proxy.partition(2.0))
        with pytest.raises((RequestTimeout, Timeout)):
            await client.request("svc", b"ping?", timeout=1.0)
        await partition
        await client.transport.ping()  # reconnected after the partition
    finally:
        await client.close()


async def test_reset_connections_resume_subscriptions(broker, proxy):
    t = _client(proxy.url)
    await t.connect()
    try:
        await t.create_topic(TopicSpec(name="resets"))
        sub = await t.subscribe(GroupSpec(topic="resets", name="g"))
        got: set[bytes] = set()
        for round_ in range(5):
            await t.publish("resets", [Outgoing(b"%d-%d" % (round_, i)) for i in range(10)])
            proxy.cut()
            while len(got) < 10 * (round_ + 1):
                for msg in await sub.next_batch(10, timeout=5):
                    try:
                        await msg.ack()
                        got.add(msg.body)
                    except TidingsError:
                        pass
        assert len(got) == 50
    finally:
        await t.close()
