"""Leases handed out by one dispatch share one expiry timer (a LeaseBatch). Settled entries
must leave it at once: the timer fires a whole lease later and must not keep them alive."""

from __future__ import annotations

import gc

from tidings.broker.group.entries import Entry
from tidings.model import GroupSpec, TopicSpec

from .conftest import Env, bodies, drain, join, msgs


def _live_entries() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, Entry))


def test_acked_deliveries_are_freed_before_their_lease_would_end(mem_env: Env) -> None:
    b = mem_env.broker
    b.create_topic(TopicSpec(name="t"))
    member, inbox = join(b, GroupSpec(topic="t", name="g", lease=30), prefetch=1000)
    before = _live_entries()
    b.publish("t", msgs(*[b"%d" % i for i in range(500)]))
    assert len(drain(b, member, inbox)) == 500
    assert _live_entries() == before  # not held by the 30 s lease timer
    mem_env.clock.advance(31)
    b.tick()  # the timer fires on an empty batch
    assert inbox.items == []


def test_a_partly_settled_batch_still_expires_the_rest(mem_env: Env) -> None:
    b = mem_env.broker
    b.create_topic(TopicSpec(name="t"))
    member, inbox = join(b, GroupSpec(topic="t", name="g", lease=30), prefetch=10)
    b.publish("t", msgs(*[f"m{i}" for i in range(10)]))
    first = inbox.take()
    assert len(first) == 10  # one dispatch: one lease batch
    for d in first[:4]:
        b.ack(member, d.partition, d.offset)
    b.extend(member, first[4].partition, first[4].offset, 100)  # leaves the batch
    mem_env.clock.advance(31)
    b.tick()
    again = inbox.take()
    assert len(again) == 4  # the 5 expired leases keep their credit: 10 - 5 - m4's
    b.add_credit(member, 5)  # as the client does when it drops them: the credit comes back
    again += inbox.take()
    assert sorted(bodies(again)) == [f"m{i}".encode() for i in range(5, 10)]
    assert all(d.delivery_count == 2 for d in again)
    for d in again:
        b.ack(member, d.partition, d.offset)
    mem_env.clock.advance(70)
    b.tick()  # now m4's own, extended lease ends too
    assert bodies(inbox.take()) == [b"m4"]
