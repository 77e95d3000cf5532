"""Issue point 7: key_ordered shared groups — one in-flight message per key, in order."""

from __future__ import annotations

import random

import pytest

from tidings.errors import BadRequest
from tidings.model import GroupSpec, Outgoing, TopicSpec

from .conftest import Env, join

KG = GroupSpec(topic="t", name="g", key_ordered=True, lease=10)


@pytest.fixture
def b(env: Env):
    env.broker.create_topic(TopicSpec(name="t", partitions=3))
    return env.broker


def test_one_in_flight_per_key_in_publish_order(env: Env, b) -> None:
    members = [join(b, KG, prefetch=10) for _ in range(3)]
    keys = [f"key{i}" for i in range(6)]
    sent = {k: [] for k in keys}
    for i in range(60):
        k = keys[i % 6]
        b.publish("t", [Outgoing(b"%s:%d" % (k.encode(), i), key=k)])
        sent[k].append(b"%s:%d" % (k.encode(), i))
    rng = random.Random(7)
    received = {k: [] for k in keys}
    in_flight: dict[str, tuple[str, object]] = {}
    served_by: dict[str, set[str]] = {k: set() for k in keys}
    for _ in range(10_000):
        for m, inbox in members:
            for d in inbox.take():
                assert d.key not in in_flight, f"{d.key} is in flight twice"
                in_flight[d.key] = (m, d)
                received[d.key].append(d.body)
                served_by[d.key].add(m)
        if not in_flight:
            break
        key = rng.choice(sorted(in_flight))
        m, d = in_flight.pop(key)
        b.ack(m, d.partition, d.offset)
    assert received == sent
    # different keys spread over all members
    assert set().union(*served_by.values()) == {m for m, _ in members}


def test_first_dispatch_spreads_keys(b) -> None:
    members = [join(b, KG, prefetch=10) for _ in range(3)]
    b.publish("t", [Outgoing(b"%d" % i, key=f"k{i % 3}") for i in range(9)])
    assert [len(inbox) for _, inbox in members] == [1, 1, 1]
    assert sorted(inbox.items[0].key for _, inbox in members) == ["k0", "k1", "k2"]


def test_nack_and_expiry_keep_key_order(env: Env, b) -> None:
    m1, in1 = join(b, KG, prefetch=10)
    m2, in2 = join(b, KG, prefetch=10)
    b.publish("t", [Outgoing(b"%d" % i, key="same") for i in range(3)])
    holder = m1 if in1.items else m2
    [d] = in1.take() + in2.take()
    assert d.body == b"0"
    b.nack(holder, d.partition, d.offset, delay=2)  # "0" comes back before "1"
    assert in1.items == [] and in2.items == []  # "1" waits behind the nacked "0"
    env.clock.advance(2)
    b.tick()
    [d] = in1.take() + in2.take()
    assert (d.body, d.delivery_count) == (b"0", 2)
    env.clock.advance(10)  # lease expires: "0" again, still before "1"
    b.tick()
    [d] = in1.take() + in2.take()
    assert (d.body, d.delivery_count) == (b"0", 3)


def test_keyless_messages_are_not_serialised(b) -> None:
    _m, inbox = join(b, KG, prefetch=10)
    b.publish("t", [Outgoing(b"%d" % i) for i in range(5)])
    assert len(inbox) == 5


def test_key_ordered_needs_shared_mode(mem_env: Env) -> None:
    mem_env.broker.create_topic(TopicSpec(name="t"))
    with pytest.raises(BadRequest, match="key_ordered"):
        mem_env.broker.create_group(
            GroupSpec(topic="t", name="g", mode="ordered", key_ordered=True)
        )
