"""Stuck members on redis:// (docs/transports.md R9): what the conformance scenario
(tests/conformance/test_stuck_member_closed.py) does not reach. A member whose leases ran out
unsettled is listed in ``stuck_members`` only while it stays stuck (taking a message again
clears it), and a stuck owner of an ordered group is closed after its lease periods, its
partitions moving to a healthy member that resumes them in order."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
from tests.conformance.scenarios import eventually

import tidings
from tidings.errors import LeaseLost, MemberStuck
from tidings.partitioning import partition_for


def _key_of(partition: int, nth: int) -> str:
    """The ``nth`` key k0, k1, ... that lands in ``partition`` of two."""
    keys = (f"k{i}" for i in range(1000))
    return [k for k in keys if partition_for(k, 2) == partition][nth]


@pytest.fixture
def topic() -> str:
    return f"stuck.{secrets.token_hex(4)}"


@pytest.fixture
async def patient(redis_server) -> AsyncIterator[tidings.AsyncClient]:
    """Never closes a stuck member, so the listing can be watched without a race."""
    async with tidings.connect(redis_server.url, stuck_member_leases=0) as c:
        yield c


async def test_a_stuck_member_is_listed_until_it_takes_a_message_again(
    patient: tidings.AsyncClient, topic: str
) -> None:
    client = patient
    await client.create_topic(topic)
    await client.publish_many(topic, [tidings.Outgoing(b"%d" % i) for i in range(3)])
    sub = await client.subscribe(topic, "g", lease=0.5, prefetch=3, max_lease_extension=0)
    first = await sub.next(timeout=5)
    assert first is not None  # ... and it stops iterating for a while

    async def listed() -> list[tidings.StuckMember]:
        return (await client.group_info(topic, "g")).stuck_members

    [entry] = await eventually(listed, 10)
    assert entry.member_id and entry.expiries >= 1 and entry.partitions == []
    assert (await client.group_info(topic, "g")).members == 1  # stuck, still a member
    with pytest.raises(LeaseLost):
        await first.ack()  # its lease ran out: the message went back
    again = await sub.next(timeout=5)  # a sign of life: no longer stuck
    assert again is not None

    async def cleared() -> bool:
        return (await client.group_info(topic, "g")).stuck_members == []

    assert await eventually(cleared, 5)
    await again.ack()
    await sub.close()


async def test_a_stuck_ordered_owner_is_closed_and_its_partitions_move(
    redis_server, topic: str
) -> None:
    async with tidings.connect(redis_server.url) as client:
        await client.create_topic(topic, partitions=2)
        keys = [_key_of(0, 0), _key_of(0, 1), _key_of(1, 0), _key_of(1, 1)]
        await client.publish_many(
            topic, [tidings.Outgoing(b"%d" % i, key=keys[i % 4]) for i in range(12)]
        )
        stuck = await client.subscribe(
            topic, "o", mode="ordered", lease=1, prefetch=4, max_lease_extension=0
        )
        assert await stuck.next(timeout=10) is not None  # ... and it never iterates again

        async def reported() -> list[tidings.StuckMember]:
            return (await client.group_info(topic, "o")).stuck_members

        [entry] = await eventually(reported, 10)
        assert entry.partitions == [0, 1] and entry.expiries >= 1
        healthy = await client.subscribe(topic, "o", mode="ordered", lease=5, prefetch=4)

        async def alone() -> bool:
            return (await client.group_info(topic, "o")).members == 1

        got: dict[str, list[int]] = {}
        while sum(map(len, got.values())) < 12:
            msg = await healthy.next(timeout=20)
            assert msg is not None, got
            if msg.offset not in got.setdefault(msg.key or "", []):
                got[msg.key or ""].append(msg.offset)
            await msg.ack()
        for offsets in got.values():  # each key in order, from the first message on
            assert offsets == sorted(offsets) and len(offsets) == 3
        assert await eventually(alone, 20)  # the stuck member closed itself
        with pytest.raises(MemberStuck, match="subscribe again"):
            await stuck.next(timeout=5)
        info = await client.group_info(topic, "o")
        assert info.members == 1 and info.stuck_members == [] and info.dead_lettered == 0
        await stuck.close()
        await healthy.close()
