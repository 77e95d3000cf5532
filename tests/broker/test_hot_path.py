"""The hot path's shortcuts keep their promises: consumers that keep up are served from the
in-memory tail (no store reads), acks settled in one event-loop turn cost one dispatch, and
one lease timer covers a whole delivery batch without changing lease semantics."""

from __future__ import annotations

import asyncio

from tidings.broker import BrokerRuntime
from tidings.model import GroupSpec, Outgoing, TopicSpec
from tidings.storage import MemoryStore

from .conftest import Env, join, msgs


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def read(self, *args, **kwargs):
        self.reads += 1
        return super().read(*args, **kwargs)


def test_keeping_up_reads_nothing_back_from_the_store(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t"))
    member, inbox = join(b, GroupSpec(topic="t", name="g"), prefetch=1000)
    reads = 0
    original = env.store.read

    def counting(*args, **kwargs):
        nonlocal reads
        reads += 1
        return original(*args, **kwargs)

    env.store.read = counting  # type: ignore[method-assign]
    for i in range(20):
        b.publish("t", msgs(*(f"{i}-{j}" for j in range(50))))
        for d in inbox.take():
            b.ack(member, d.partition, d.offset)
    assert reads == 0
    assert b.group_info("t", "g").lag == 0


def test_a_lagging_group_still_reads_the_backlog_from_the_store(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t"))
    b.publish("t", msgs(*(f"m{i}" for i in range(5000))))  # more than the tail holds
    env.reopen()
    b = env.broker
    _member, inbox = join(b, GroupSpec(topic="t", name="late"), prefetch=10_000)
    got = inbox.take()
    assert [d.body for d in got] == [f"m{i}".encode() for i in range(5000)]


def test_one_lease_timer_per_batch_expires_each_message(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t"))
    member, inbox = join(b, GroupSpec(topic="t", name="g", lease=5), prefetch=10)
    timers_before = len(b._timers)
    b.publish("t", msgs(*(f"m{i}" for i in range(10))))
    first = inbox.take()
    assert len(first) == 10
    assert len(b._timers) - timers_before == 1  # the batch shares one timer
    b.ack(member, first[0].partition, first[0].offset)
    b.extend(member, first[1].partition, first[1].offset, 60)
    env.clock.advance(6)
    b.tick()
    again = inbox.take()
    # 8 expired (not the acked one, not the extended one); their credit stays used until the
    # member settles something, so only the one free slot took one back at once
    assert len(again) == 1
    b.ack(member, first[1].partition, first[1].offset)  # alive: the credit comes back
    again += inbox.take()
    assert sorted(d.offset for d in again) == sorted(d.offset for d in first[2:])
    assert all(d.delivery_count == 2 for d in again)


async def test_acks_in_one_loop_turn_cost_one_dispatch() -> None:
    store = CountingStore()
    runtime = BrokerRuntime(store, fsync="never")
    await runtime.start()
    try:
        b = runtime.broker
        b.create_topic(TopicSpec(name="t"))
        inbox: list = []
        calls = 0

        def deliver(deliveries):
            nonlocal calls
            calls += 1
            inbox.extend(deliveries)

        member = b.join(GroupSpec(topic="t", name="g"), prefetch=100, deliver=deliver)
        await runtime.publish("t", [Outgoing(b"x%d" % i) for i in range(300)])
        await runtime.commit()
        assert len(inbox) == 100
        batch, inbox[:] = list(inbox), []
        calls = 0
        for d in batch:  # 100 acks in one turn of the loop
            b.ack(member, d.partition, d.offset)
        assert calls == 0  # nothing dispatched yet
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert calls == 1 and len(inbox) == 100
    finally:
        await runtime.stop()
