"""A stuck member is reported and then closed (issue #12, part 2; redis:// issue #22).

A member takes a message and stops iterating while its connection stays alive. Its leases
run out: the group's stats list it as stuck with its expired leases; three lease periods
later (the broker's ``--stuck-member-leases``, default 3) the broker closes the subscription,
the client's ``next()`` raises ``MemberStuck`` with the reason, and a healthy member gets
every message. Runs on ``memory://`` and ``tidings://`` (the built-in broker's engine) and on
``redis://`` (single server and Cluster), where the member's own transport keeps the same rule
(docs/transports.md R9); on ``nats://`` and ``amqp://`` stuck members are not reported (nats
difference 11, amqp A10).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

import tidings
from tidings.errors import LeaseLost, MemberStuck
from tidings.transports.memory import stop_memory_broker

from .scenarios import eventually


@pytest.fixture(params=["memory", "tidings", "redis", "redis-cluster"])
async def builtin(request: pytest.FixtureRequest) -> AsyncIterator[tidings.AsyncClient]:
    if request.param == "memory":
        url = "memory://stuck-closed"
    elif request.param == "tidings":
        url = request.getfixturevalue("tidings_broker").url
    else:
        fixture = "redis_server" if request.param == "redis" else "redis_cluster"
        url = request.getfixturevalue(fixture).url
    async with tidings.connect(url) as client:
        yield client
    if request.param == "memory":
        await stop_memory_broker("stuck-closed")


async def test_a_stuck_member_is_reported_then_closed(
    builtin: tidings.AsyncClient, topic: str
) -> None:
    client = builtin
    await client.create_topic(topic)
    await client.publish_many(topic, [tidings.Outgoing(b"%d" % i) for i in range(10)])
    stuck = await client.subscribe(
        topic, "work", lease=1, prefetch=5, max_deliveries=5, max_lease_extension=0
    )
    assert await stuck.next(timeout=10) is not None  # ... and it never iterates again
    began = time.monotonic()

    async def reported() -> bool:
        info = await client.group_info(topic, "work")
        return bool(info.stuck_members) and info.stuck_members[0].expiries >= 1

    assert await eventually(reported, 10)
    [entry] = (await client.group_info(topic, "work")).stuck_members
    assert entry.member_id and entry.expiries >= 1

    async def closed() -> bool:
        return (await client.group_info(topic, "work")).members == 0

    assert await eventually(closed, 20)
    assert time.monotonic() - began >= 2.5  # not before three lease periods (less slack)
    with pytest.raises(MemberStuck, match="subscribe again") as caught:
        await stuck.next(timeout=5)
    assert isinstance(caught.value, LeaseLost)
    await stuck.close()  # closing a subscription the broker closed is fine

    healthy = await client.subscribe(topic, "work", lease=5, prefetch=10, max_deliveries=5)
    got: set[bytes] = set()
    deadline = time.monotonic() + 30
    while len(got) < 10 and time.monotonic() < deadline:
        msg = await healthy.next(timeout=5)
        if msg is None:
            break
        got.add(msg.body)
        await msg.ack()
    assert len(got) == 10, sorted(got)
    info = await client.group_info(topic, "work")
    assert info.dead_lettered == 0 and info.stuck_members == []
    await healthy.close()
