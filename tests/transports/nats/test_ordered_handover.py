"""The handover of an ordered group's partition on nats:// does not depend on timing (issue #12).

Under heavy CPU load the steps of a handover stretch: a member that leaves goes on pulling for
a while after it said goodbye, and a member may not read the new member list for a while. Both
are made certain here (a puller that stops late, a member that never re-reads the list), so
what the new owner may do is not a matter of luck: it starts a partition only once the previous
holder released it, and then in stream order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time

from tidings.errors import Closed
from tidings.model import GroupSpec, Outgoing, TopicSpec
from tidings.partitioning import partition_for

PARTITIONS = 2


def spec(topic: str) -> GroupSpec:
    return GroupSpec(
        topic=topic,
        name="ordered",
        mode="ordered",
        lease=5.0,
        session_timeout=3.0,
        in_flight_per_partition=8,  # a window of 1 would hide an overlap
    )


def key_on(partition: int) -> str:
    return next(
        k for k in (f"k{i}" for i in itertools.count()) if partition_for(k, PARTITIONS) == partition
    )


async def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def two_members(connect, topic: str):
    a, b = await connect(), await connect()
    await a.create_topic(TopicSpec(name=topic, partitions=PARTITIONS))
    sa = await a.subscribe(spec(topic))
    sb = await b.subscribe(spec(topic))
    await wait_for(lambda: len(sa.partitions) == 1 and len(sb.partitions) == 1)
    return a, sa, sb


async def drain(sub, into: list[int], partition: int, idle: float) -> None:
    with contextlib.suppress(Closed):
        await _drain(sub, into, partition, idle)


async def _drain(sub, into: list[int], partition: int, idle: float) -> None:
    while (m := await sub.next(timeout=idle)) is not None:
        if m.partition == partition:
            into.append(m.offset)
        await m.ack()


async def test_a_leaving_member_that_goes_on_pulling_is_waited_for(connect, name) -> None:
    topic = name("late-stop")
    a, sa, sb = await two_members(connect, topic)
    q = sb.partitions[0]
    await wait_for(lambda: q in sb._pullers and q not in sb._fenced)  # b processes q
    puller = sb._pullers[q]
    stop = puller.stop

    async def late_stop(drain: bool = True) -> bool:
        await asyncio.sleep(3.0)  # a starved process: still pulling after its goodbye
        return await stop(drain)

    puller.stop = late_stop
    leaving = asyncio.create_task(sb.close())
    await wait_for(lambda: q in sa.partitions, timeout=5)  # a gained q (it may not start it)
    await asyncio.sleep(0.6)  # a fence that ignores the leaving member is over by now
    key = key_on(q)
    await a.publish(topic, [Outgoing(str(i).encode(), key=key) for i in range(20)])
    handled: list[int] = []
    await drain(sa, handled, q, idle=0.5)
    await leaving
    await drain(sa, handled, q, idle=6.0)  # what the leaving member caught comes back
    firsts = [o for i, o in enumerate(handled) if o not in handled[:i]]
    assert firsts == sorted(firsts), f"partition {q} started out of order: {handled}"
    assert len(firsts) == 20


async def test_a_member_that_has_not_seen_the_join_keeps_its_partition(connect, name) -> None:
    topic = name("blind")
    a = await connect()
    await a.create_topic(TopicSpec(name=topic, partitions=PARTITIONS))
    sa = await a.subscribe(spec(topic))
    assert sa.partitions == [0, 1]
    assert sa.membership is not None

    async def blind() -> None:  # heartbeats go on; the member list is never read again
        return None

    sa.membership._refresh = blind  # type: ignore[method-assign]
    b = await connect()
    sb = await b.subscribe(spec(topic))
    await wait_for(lambda: len(sb.partitions) == 1)  # b believes it owns one partition now
    q = sb.partitions[0]
    key = key_on(q)
    taken_by_b: list[int] = []
    handled_by_a: list[int] = []
    consumer_b = asyncio.create_task(drain(sb, taken_by_b, q, idle=8.0))
    for n in range(8):
        await a.publish(topic, [Outgoing(f"{n}-{i}".encode(), key=key) for i in range(5)])
        await drain(sa, handled_by_a, q, idle=0.3)
    await drain(sa, handled_by_a, q, idle=1.0)
    await sb.close()
    await consumer_b
    # a still holds q (it never learned it lost it): b must not have started any of it
    assert taken_by_b == [], f"b started {len(taken_by_b)} messages a was still handling"
    assert sorted(set(handled_by_a)) == list(range(40))
