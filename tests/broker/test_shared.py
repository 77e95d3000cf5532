"""Issue point 5: shared mode — leases, ack/nack/extend/reject, dead-letter, fair dispatch."""

from __future__ import annotations

import pytest

from tidings import headers as H
from tidings.errors import LeaseLost, NotFound
from tidings.model import DEFAULT_MAX_DELIVERIES, GroupSpec, Outgoing, TopicSpec

from .conftest import Env, join

G = GroupSpec(topic="t", name="g", lease=10)


@pytest.fixture
def b(env: Env):
    env.broker.create_topic(TopicSpec(name="t"))
    return env.broker


def test_lease_expiry_redelivers_with_count(env: Env, b) -> None:
    _m, inbox = join(b, G)
    b.publish("t", [Outgoing(b"x")])
    [d] = inbox.take()
    assert d.delivery_count == 1 and d.lease_until == env.clock.now() + 10
    env.clock.advance(9.9)
    b.tick()
    assert inbox.items == []
    env.clock.advance(0.1)
    b.tick()
    [d2] = inbox.take()
    assert (d2.offset, d2.delivery_count, d2.id) == (0, 2, d.id)


def test_ack_removes(env: Env, b) -> None:
    m, inbox = join(b, G)
    b.publish("t", [Outgoing(b"x"), Outgoing(b"y")])
    b.ack(m, 0, 0)
    env.clock.advance(100)
    b.tick()
    assert [d.offset for d in inbox.items] == [0, 1, 1]  # only y comes back
    with pytest.raises(LeaseLost):
        b.ack(m, 0, 0)  # already settled
    info = b.group_info("t", "g")
    assert info.lag == 1 and info.in_flight == 1


def test_nack_delay(env: Env, b) -> None:
    m, inbox = join(b, G)
    b.publish("t", [Outgoing(b"x")])
    inbox.take()
    b.nack(m, 0, 0, delay=5)
    assert inbox.items == []
    assert b.group_info("t", "g").delayed == 1
    env.clock.advance(4.9)
    b.tick()
    assert inbox.items == []
    env.clock.advance(0.1)
    b.tick()
    [d] = inbox.take()
    assert d.delivery_count == 2
    b.nack(m, 0, 0)  # no delay: at once
    [d] = inbox.take()
    assert d.delivery_count == 3


def test_nacked_message_goes_before_newer_ones(env: Env, b) -> None:
    m, inbox = join(b, G, prefetch=1)
    b.publish("t", [Outgoing(b"%d" % i) for i in range(3)])
    [d] = inbox.take()
    b.nack(m, 0, d.offset)
    assert [x.offset for x in inbox.take()] == [0]


def test_extend_prolongs(env: Env, b) -> None:
    m, inbox = join(b, G)
    b.publish("t", [Outgoing(b"x")])
    inbox.take()
    env.clock.advance(8)
    b.extend(m, 0, 0, 20)  # lease now ends at 28
    env.clock.advance(15)
    b.tick()
    assert inbox.items == []
    env.clock.advance(4.9)
    b.tick()
    assert inbox.items == []
    env.clock.advance(0.2)
    b.tick()
    [d] = inbox.take()
    assert d.delivery_count == 2


def test_extend_can_shorten(env: Env, b) -> None:
    m, inbox = join(b, G)
    b.publish("t", [Outgoing(b"x")])
    inbox.take()
    b.extend(m, 0, 0, 1)
    env.clock.advance(1)
    b.tick()
    assert [d.delivery_count for d in inbox.take()] == [2]


def dlq_records(b, name: str):
    _, inbox = join(b, GroupSpec(topic=name, name="inspect"), prefetch=100)
    return inbox.items


def test_reject_dead_letters_at_once(env: Env, b) -> None:
    m, inbox = join(b, G)
    [r] = b.publish("t", [Outgoing(b"poison", key="k", headers={"a": "b"})])
    inbox.take()
    b.reject(m, 0, 0, "cannot parse")
    env.clock.advance(100)
    b.tick()
    assert inbox.items == []
    name = H.dead_letter_topic("t", "g")
    assert name == "t.g.dlq"
    [d] = dlq_records(b, name)
    assert (d.body, d.key) == (b"poison", "k")
    assert d.headers["a"] == "b"
    assert d.headers[H.DLQ_REASON] == "rejected"
    assert d.headers[H.DLQ_ERROR] == "cannot parse"
    assert d.headers[H.DLQ_DELIVERIES] == "1"
    assert d.headers[H.DLQ_ID] == r.id
    info = b.group_info("t", "g")
    assert info.dead_lettered == 1 and info.lag == 0


def test_max_deliveries_dead_letters_with_headers(env: Env, b) -> None:
    spec = GroupSpec(topic="t", name="g", lease=10, max_deliveries=3)
    m, inbox = join(b, spec)
    b.create_topic(TopicSpec(name="t2", partitions=2))
    [r] = b.publish("t", [Outgoing(b"bad", key="k1", headers={"x": "1"}, msg_id="mid")])
    inbox.take()
    b.nack(m, 0, 0, error="boom 1")
    inbox.take()
    env.clock.advance(10)  # second delivery: lease expires
    b.tick()
    [d] = inbox.take()
    assert d.delivery_count == 3
    b.nack(m, 0, 0, error="ValueError: boom 3")
    assert inbox.items == []
    assert "t.g.dlq" in [t.name for t in b.list_topics()]  # created on demand
    [dl] = dlq_records(b, "t.g.dlq")
    h = dl.headers
    assert (dl.body, dl.key, h["x"]) == (b"bad", "k1", "1")
    assert h[H.DLQ_REASON] == "max-deliveries"
    assert h[H.DLQ_DELIVERIES] == "3"
    assert (h[H.DLQ_TOPIC], h[H.DLQ_GROUP]) == ("t", "g")
    assert (h[H.DLQ_PARTITION], h[H.DLQ_OFFSET]) == (str(r.partition), str(r.offset))
    assert h[H.DLQ_ERROR] == "ValueError: boom 3"
    assert h[H.DLQ_ID] == r.id
    assert b.group_info("t", "g").dead_lettered == 1


def test_lease_expiry_past_max_keeps_last_nack_error(env: Env, b) -> None:
    m, _inbox = join(b, GroupSpec(topic="t", name="g", lease=10, max_deliveries=2))
    b.publish("t", [Outgoing(b"x")])
    b.nack(m, 0, 0, error="first failure")
    env.clock.advance(10)
    b.tick()
    [dl] = dlq_records(b, "t.g.dlq")
    assert dl.headers[H.DLQ_ERROR] == "first failure"
    assert dl.headers[H.DLQ_DELIVERIES] == "2"


def test_custom_dead_letter_topic(env: Env, b) -> None:
    m, _ = join(b, GroupSpec(topic="t", name="g", dead_letter_topic="errors"))
    b.publish("t", [Outgoing(b"x")])
    b.reject(m, 0, 0, "no")
    assert [d.body for d in dlq_records(b, "errors")] == [b"x"]


def test_default_max_deliveries_is_20(env: Env, b) -> None:
    assert DEFAULT_MAX_DELIVERIES == 20
    m, inbox = join(b, G)
    b.publish("t", [Outgoing(b"x")])
    for n in range(1, 21):
        [d] = inbox.take()
        assert d.delivery_count == n
        b.nack(m, 0, 0)
    assert inbox.items == []
    assert b.group_info("t", "g").dead_lettered == 1


def test_zero_max_deliveries_is_unlimited(env: Env, b) -> None:
    m, inbox = join(b, GroupSpec(topic="t", name="g", max_deliveries=0))
    b.publish("t", [Outgoing(b"x")])
    for n in range(1, 60):
        [d] = inbox.take()
        assert d.delivery_count == n
        b.nack(m, 0, 0)
    assert "t.g.dlq" not in [t.name for t in b.list_topics()]


def test_prefetch_one_never_hoards(env: Env, b) -> None:
    spec = GroupSpec(topic="t", name="g")
    _busy, busy_in = join(b, spec, prefetch=1)
    idle1, in1 = join(b, spec, prefetch=1)
    idle2, in2 = join(b, spec, prefetch=1)
    b.publish("t", [Outgoing(b"%d" % i) for i in range(9)])
    assert [len(busy_in), len(in1), len(in2)] == [1, 1, 1]
    # the busy member keeps its message; the idle ones ack and get everything else
    held = busy_in.items[0]
    for _ in range(10):
        for m, inbox in ((idle1, in1), (idle2, in2)):
            for d in inbox.take():
                b.ack(m, d.partition, d.offset)
    assert busy_in.items == [held]
    assert b.group_info("t", "g").lag == 1
    assert b.group_info("t", "g").in_flight == 1


def test_prefetch_bounds_in_flight(env: Env, b) -> None:
    m1, in1 = join(b, G, prefetch=3)
    _m2, in2 = join(b, G, prefetch=5)
    b.publish("t", [Outgoing(b"%d" % i) for i in range(20)])
    assert (len(in1), len(in2)) == (3, 5)
    d = in1.take()[0]
    b.ack(m1, d.partition, d.offset)
    assert (len(in1), len(in2)) == (1, 5)


def test_fair_round_robin(env: Env, b) -> None:
    inboxes = [join(b, G, prefetch=100)[1] for _ in range(4)]
    b.publish("t", [Outgoing(b"%d" % i) for i in range(40)])
    assert [len(i) for i in inboxes] == [10, 10, 10, 10]


def test_lease_lost_precisely(env: Env, b) -> None:
    """m1's lease expires and the message is redelivered to m2: m1's ack raises LeaseLost and
    changes nothing; m2's ack settles it."""
    m1, in1 = join(b, G, prefetch=1)
    b.publish("t", [Outgoing(b"x"), Outgoing(b"y")])
    [x] = in1.take()
    assert x.offset == 0
    m2, in2 = join(b, G, prefetch=1)
    [y] = in2.take()
    assert y.offset == 1
    b.extend(m1, 0, 0, 5)
    env.clock.advance(5)
    b.ack(m2, 0, 1)  # m2 free now; the timer has not run yet
    b.tick()  # m1's lease expires: the rotation decides between m1 and m2 (both free)
    got1, got2 = in1.take(), in2.take()
    if got1:
        # give m2 the next chance: expire again with m1 occupied by nothing else
        env.clock.advance(10)
        b.tick()
        got1, got2 = in1.take(), in2.take()
    assert [d.offset for d in got2] == [0], (got1, got2)
    with pytest.raises(LeaseLost):
        b.ack(m1, 0, 0)
    with pytest.raises(LeaseLost):
        b.nack(m1, 0, 0)
    with pytest.raises(LeaseLost):
        b.extend(m1, 0, 0, 5)
    with pytest.raises(LeaseLost):
        b.reject(m1, 0, 0, "x")
    assert b.group_info("t", "g").in_flight == 1
    b.ack(m2, 0, 0)
    assert b.group_info("t", "g").lag == 0


def test_unknown_member(env: Env, b) -> None:
    with pytest.raises(NotFound, match="member"):
        b.ack("nobody", 0, 0)


def test_leave_returns_deliveries_at_once(env: Env, b) -> None:
    m1, in1 = join(b, G, prefetch=5)
    b.publish("t", [Outgoing(b"%d" % i) for i in range(3)])
    assert len(in1.take()) == 3
    _m2, in2 = join(b, G, prefetch=5)
    b.leave(m1)
    assert [d.offset for d in in2.items] == [0, 1, 2]
    with pytest.raises(NotFound):
        b.leave(m1)


def test_lease_state_survives_crash_as_redelivery(env: Env, b) -> None:
    m, _inbox = join(b, G)
    b.publish("t", [Outgoing(b"%d" % i) for i in range(3)])
    b.ack(m, 0, 1)
    b2 = env.reopen()
    _, inbox2 = join(b2, G)
    assert [d.offset for d in inbox2.items] == [0, 2]
