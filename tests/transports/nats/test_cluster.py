"""The 3-node cluster test: a replicated topic keeps every confirmed message when a node dies.

Three nats-server processes on loopback, a topic with replicas=3, a producer and a shared group
of two members, all through NatsTransport. Midway the node leading the topic's stream is
SIGKILLed. Every message whose publish was confirmed must be delivered and processed, and
consumption must go on after the kill.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tidings.errors import TidingsError
from tidings.model import GroupSpec, Outgoing, TopicSpec
from tidings.transports.nats import NatsTransport
from tidings.transports.nats.naming import stream_name

pytestmark = pytest.mark.slow

TOTAL = 3000
BATCH = 50


async def test_replicated_topic_survives_a_node_kill(nats_cluster, name):
    topic = name("replicated")
    producer = NatsTransport(nats_cluster.url, publish_timeout=5.0)
    workers = [NatsTransport(nats_cluster.url) for _ in range(2)]
    for t in (producer, *workers):
        await t.connect()
    try:
        await producer.create_topic(TopicSpec(name=topic, partitions=2, replicas=3))
        spec = GroupSpec(topic=topic, name="workers", lease=5.0)
        subs = [await w.subscribe(spec, prefetch=50) for w in workers]

        confirmed: set[str] = set()
        processed: set[str] = set()
        processed_after_kill: list[str] = []
        killed_at: list[float] = []
        done = asyncio.Event()

        async def produce() -> None:
            for start in range(0, TOTAL, BATCH):
                batch = [
                    Outgoing(f"m-{i}".encode(), key=f"k{i % 7}", msg_id=f"m-{i}")
                    for i in range(start, start + BATCH)
                ]
                while True:  # retry the same batch (same msg ids) until it is confirmed
                    try:
                        await producer.publish(topic, batch)
                        break
                    except TidingsError:
                        await asyncio.sleep(0.2)
                confirmed.update(m.msg_id for m in batch)
                if start == TOTAL // 3:
                    info = await producer.js.stream_info(stream_name(topic))
                    leader = info.cluster.leader
                    victim = next(s for s in nats_cluster.servers if s.name == leader)
                    victim.kill()
                    killed_at.append(time.monotonic())

        async def work(sub) -> None:
            while not done.is_set():
                try:
                    m = await sub.next(timeout=0.5)
                    if m is None:
                        continue
                    processed.add(m.body.decode())
                    if killed_at:
                        processed_after_kill.append(m.body.decode())
                    await m.ack()
                except TidingsError:
                    await asyncio.sleep(0.1)  # failing over: the message comes back

        workers_tasks = [asyncio.create_task(work(s)) for s in subs]
        await asyncio.wait_for(produce(), timeout=40)
        deadline = time.monotonic() + 30
        while not confirmed <= processed and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        done.set()
        await asyncio.gather(*workers_tasks)

        assert killed_at, "the node was never killed"
        assert len(confirmed) == TOTAL
        missing = confirmed - processed
        assert not missing, f"{len(missing)} confirmed messages never processed"
        assert len(processed_after_kill) > TOTAL // 3  # consumption went on after the kill
    finally:
        for t in (producer, *workers):
            await t.close()
