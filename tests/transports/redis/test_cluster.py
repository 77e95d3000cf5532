"""redis:// on a Redis Cluster (three primaries, tests/helpers/redis_cluster.py): the URL names
one node and the transport finds the others. The conformance suite runs every scenario on the
cluster too ("redis-cluster"); these tests check what is particular to it."""

from __future__ import annotations

import redis
from tests.helpers.redis_cluster import redis_cluster  # noqa: F401 - fixture

import tidings
from tidings import Outgoing
from tidings.transports.redis.naming import TopicKeys


def _owner(cluster, key: str) -> int:
    """The port of the node that owns ``key``'s slot."""
    r = redis.Redis(port=cluster.nodes[0].port)
    try:
        slot = r.cluster("keyslot", key)
        for start, end, (_host, port, *_rest), *_replicas in r.cluster("slots"):
            if start <= slot <= end:
                return int(port)
    finally:
        r.close()
    raise AssertionError(f"no node owns slot {slot}")


async def test_topics_spread_over_the_nodes_and_each_one_works(redis_cluster):  # noqa: F811
    names = [f"spread.{i}" for i in range(12)]
    owners = {_owner(redis_cluster, TopicKeys(n).stream(0)) for n in names}
    assert len(owners) >= 2, "the test topics should live on more than one node"
    async with tidings.connect(redis_cluster.url) as client:
        for name in names:
            await client.create_topic(name, partitions=2)
            bodies = [b"%s-%d" % (name.encode(), i) for i in range(5)]
            await client.publish_many(name, [Outgoing(b) for b in bodies])
        for name in names:
            sub = await client.subscribe(name, "g", start="earliest")
            got = []
            while len(got) < 5:
                batch = await sub.next_batch(5, timeout=5)
                assert batch, f"{name}: only {len(got)} of 5 arrived"
                got += batch
            await sub.ack_many(got)
            assert sorted(m.body for m in got) == [b"%s-%d" % (name.encode(), i) for i in range(5)]
            await sub.close()
        topics = {t.name for t in await client.list_topics()}
        assert set(names) <= topics


async def test_a_dead_letter_topic_made_on_demand_shares_its_source_slot(redis_cluster):  # noqa: F811
    async with tidings.connect(redis_cluster.url) as client:
        await client.create_topic("cl.orders")
        await client.publish("cl.orders", b"bad")
        sub = await client.subscribe("cl.orders", "billing", start="earliest")
        msg = await sub.next(timeout=5)
        assert msg is not None
        await msg.reject("malformed")
        await sub.close()
        [dead] = await client.dead_letters("cl.orders", "billing")
        assert dead.body == b"bad"
