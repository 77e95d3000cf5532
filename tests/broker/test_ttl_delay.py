"""Issue point 9: TTL (never delivered after expiry; dropped or dead-lettered) and delay
(invisible until its time), and that timers stay a heap (ticks do not scan the backlog)."""

from __future__ import annotations

import pytest

from tidings import headers as H
from tidings.model import GroupSpec, Outgoing, TopicSpec

from .conftest import Env, drain, join


@pytest.fixture
def b(env: Env):
    env.broker.create_topic(TopicSpec(name="t"))
    return env.broker


@pytest.mark.parametrize("mode", ["shared", "ordered"])
def test_expired_message_never_delivered(env: Env, b, mode: str) -> None:
    b.publish("t", [Outgoing(b"short", ttl=5), Outgoing(b"long", ttl=100), Outgoing(b"none")])
    env.clock.advance(5)  # exactly at expiry: no longer deliverable
    b.tick()
    m, inbox = join(b, GroupSpec(topic="t", name="g", mode=mode), prefetch=10)
    got = drain(b, m, inbox)
    assert [d.body for d in got] == [b"long", b"none"]
    info = b.group_info("t", "g")
    assert info.lag == 0 and info.dead_lettered == 0
    assert "t.g.dlq" not in [t.name for t in b.list_topics()]


def test_expired_while_waiting_for_redelivery(env: Env, b) -> None:
    m, inbox = join(b, GroupSpec(topic="t", name="g", lease=10), prefetch=10)
    b.publish("t", [Outgoing(b"x", ttl=15)])
    assert len(inbox.take()) == 1
    b.nack(m, 0, 0, delay=20)
    env.clock.advance(20)
    b.tick()
    assert inbox.items == []
    assert b.group_info("t", "g").lag == 0


@pytest.mark.parametrize("mode", ["shared", "ordered"])
def test_expired_dead_lettered_when_asked(env: Env, b, mode: str) -> None:
    spec = GroupSpec(topic="t", name="g", mode=mode, dead_letter_expired=True)
    b.create_group(spec)
    [r] = b.publish("t", [Outgoing(b"stale", key="k", headers={"a": "1"}, ttl=1)])
    env.clock.advance(2)
    b.tick()
    _m, inbox = join(b, spec)
    assert inbox.items == []
    _, dlq = join(b, GroupSpec(topic="t.g.dlq", name="x"))
    [d] = dlq.items
    assert (d.body, d.key, d.headers["a"]) == (b"stale", "k", "1")
    assert d.headers[H.DLQ_REASON] == "expired"
    assert d.headers[H.DLQ_DELIVERIES] == "0"
    assert d.headers[H.DLQ_ID] == r.id
    assert b.group_info("t", "g").dead_lettered == 1


@pytest.mark.parametrize("mode", ["shared", "ordered"])
def test_delay_invisible_until_due(env: Env, b, mode: str) -> None:
    m, inbox = join(b, GroupSpec(topic="t", name="g", mode=mode), prefetch=10)
    b.publish("t", [Outgoing(b"later", delay=10)])
    if mode == "shared":
        b.publish("t", [Outgoing(b"now")])
        assert [d.body for d in inbox.take()] == [b"now"]
        b.ack(m, 0, 1)
    assert inbox.items == []
    env.clock.advance(9.99)
    b.tick()
    assert inbox.items == []
    env.clock.advance(0.01)
    b.tick()
    [d] = inbox.take()
    assert d.body == b"later" and d.delivery_count == 1


def test_delay_survives_reopen(env: Env, b) -> None:
    b.publish("t", [Outgoing(b"later", delay=10)])
    b = env.reopen()
    _m, inbox = join(b, GroupSpec(topic="t", name="g"))
    assert inbox.items == []
    env.clock.advance(10)
    b.tick()
    assert [d.body for d in inbox.items] == [b"later"]


def test_delay_and_ttl(env: Env, b) -> None:
    _m, inbox = join(b, GroupSpec(topic="t", name="g"))
    b.publish("t", [Outgoing(b"never", delay=10, ttl=5)])
    env.clock.advance(10)
    b.tick()
    assert inbox.items == []


class CountingReads:
    def __init__(self, store) -> None:
        self.calls = 0
        self.records = 0
        self._read = store.read
        store.read = self

    def __call__(self, *args, **kw):
        out = self._read(*args, **kw)
        self.calls += 1
        self.records += len(out)
        return out


@pytest.mark.parametrize("mode", ["shared", "ordered"])
def test_ticks_do_not_scan_a_delayed_backlog(env: Env, b, mode: str) -> None:
    n = 10_000
    m, inbox = join(b, GroupSpec(topic="t", name="g", mode=mode), prefetch=10)
    for i in range(0, n, 100):
        b.publish("t", [Outgoing(b"d%d" % j, delay=1000 + j * 0.01) for j in range(i, i + 100)])
    reads = CountingReads(env.store)
    timers_before = len(b._timers)
    for _ in range(30):  # 30 ticks, with housekeeping, while nothing is due
        env.clock.advance(1)
        b.tick()
    assert inbox.items == []
    assert reads.records <= 30, f"ticks read {reads.records} records of the backlog"
    assert len(b._timers) <= timers_before + 30
    # when they come due, they are delivered in time order
    env.clock.advance(1100)
    b.tick()
    got = drain(b, m, inbox)
    assert len(got) == n
    assert [d.body for d in got[:3]] == [b"d0", b"d1", b"d2"]
