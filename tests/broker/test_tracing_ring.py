"""The trace ring's compact rows keep the ring's promises: a published batch is one row,
yet the ring answers with exactly the newest ``size`` events (a batch cut at the edge
included), sampling drops whole messages before anything is kept, and the rows a persister
takes (``rows_after``) put into a new ring (``restore``) answer the same queries, numbering
going on after them."""

from __future__ import annotations

from tidings import headers as H
from tidings.broker.tracing import Tracer, row_events
from tidings.model import GroupSpec, Outgoing, TopicSpec

from .conftest import Env, join


def test_exactly_the_newest_events_across_batch_rows_and_single_events(env: Env) -> None:
    b = env.broker
    tracer = Tracer(size=7)
    b.set_tracer(tracer)
    b.create_topic(TopicSpec(name="t"))
    member, inbox = join(b, GroupSpec(topic="t", name="g"), prefetch=1000)
    for round_ in range(30):
        b.publish("t", [Outgoing(b"%d" % i) for i in range(round_ % 5 + 1)])
        for d in inbox.take():
            b.ack(member, d.partition, d.offset)
        events = tracer.events
        assert len(events) == len(tracer) == min(7, tracer.seq)
        assert [e.seq for e in events] == list(range(tracer.seq - len(events) + 1, tracer.seq + 1))
        assert tracer.dropped == tracer.seq - len(events)
        # what the rows hold stays bounded: a tenth over size, plus at most one batch
        assert sum(map(row_events, tracer.rows)) <= 7 + 1 + 5
    newest = tracer.topic("t", after=-1, limit=3)[0]
    assert [e.seq for e in newest] == [tracer.seq - 2, tracer.seq - 1, tracer.seq]


def test_a_big_batch_into_a_small_ring_keeps_its_newest_messages(env: Env) -> None:
    b = env.broker
    tracer = Tracer(size=10)
    b.set_tracer(tracer)
    b.create_topic(TopicSpec(name="t"))
    receipts = b.publish("t", [Outgoing(b"%d" % i, key=f"k{i}") for i in range(1000)])
    assert [e.offset for e in tracer.events] == list(range(990, 1000))
    assert [e.key for e in tracer.events] == [f"k{i}" for i in range(990, 1000)]
    assert tracer.message(receipts[995].id)[0].offset == 995
    assert tracer.message(receipts[5].id) == []  # fell off
    assert tracer.dropped == 990


def test_unsampled_messages_leave_nothing_in_the_ring(env: Env) -> None:
    b = env.broker
    tracer = Tracer(sample=0.1)
    b.set_tracer(tracer)
    b.create_topic(TopicSpec(name="t", partitions=2))
    receipts = b.publish("t", [Outgoing(b"x", key=f"k{i}") for i in range(500)])
    kept = {e.id for e in tracer.events}
    assert kept == {r.id for r in receipts if tracer.sampled(r.id)}
    assert 10 < len(kept) < 120
    assert sum(map(row_events, tracer.rows)) == len(kept)


def test_rows_taken_by_a_persister_restore_the_same_answers(env: Env) -> None:
    b = env.broker
    tracer = Tracer()
    b.set_tracer(tracer)
    b.create_topic(TopicSpec(name="orders", partitions=2))
    member, inbox = join(b, GroupSpec(topic="orders", name="billing"), prefetch=100)
    tracer.joined(member, "connection 7 (127.0.0.1:4000)")
    tracer.origin = "connection 3 (127.0.0.1:3000)"
    headers = {H.CORRELATION_ID: "c-9"}
    receipts = b.publish("orders", [Outgoing(b"%d" % i, headers=headers) for i in range(6)])
    first = tracer.rows_after(0)
    for d in inbox.take():
        b.ack(member, d.partition, d.offset)
    written = first[-1][0] + row_events(first[-1]) - 1
    rest = tracer.rows_after(written)
    assert rest and rest[0][0] == written + 1  # only the new rows

    again = Tracer()
    again.restore(first + rest, {member: tracer.consumers[member]})
    assert again.events == tracer.events and again.seq == tracer.seq
    path = again.message(receipts[3].id)
    assert [e.event for e in path] == ["published", "delivered", "acked"]
    assert path[0].origin == "connection 3 (127.0.0.1:3000)"
    assert path[1].consumer == "connection 7 (127.0.0.1:4000)"
    assert {e.id for e in again.conversation("c-9")} == {r.id for r in receipts}
    b.set_tracer(again)  # numbering goes on
    [later] = b.publish("orders", [Outgoing(b"later")])
    assert [(e.seq, e.event) for e in again.message(later.id)] == [
        (tracer.seq + 1, "published"), (tracer.seq + 2, "delivered")
    ]  # fmt: skip


def test_restore_into_a_smaller_ring_keeps_the_newest(env: Env) -> None:
    b = env.broker
    tracer = Tracer()
    b.set_tracer(tracer)
    b.create_topic(TopicSpec(name="t"))
    for _ in range(10):
        b.publish("t", [Outgoing(b"x")] * 10)
    small = Tracer(size=25)
    small.restore(tracer.rows_after(0))
    assert [e.seq for e in small.events] == list(range(76, 101)) and small.dropped == 75


def test_one_dispatch_and_one_ack_frame_are_one_row_each_read_back_per_message(env: Env) -> None:
    b = env.broker
    tracer = Tracer(size=1000)
    b.set_tracer(tracer)
    b.create_topic(TopicSpec(name="t", partitions=2))
    member, inbox = join(b, GroupSpec(topic="t", name="g", lease=5), prefetch=100)
    b.publish("t", [Outgoing(b"%d" % i, key=f"k{i}") for i in range(6)])
    got = inbox.take()
    assert len(got) == 6
    before = len(tracer.rows)
    assert b.ack_many(member, [(d.partition, d.offset) for d in got[:5]]) == [None] * 5
    assert len(tracer.rows) == before + 1  # five acks, one row
    kinds = [r[2] for r in tracer.rows]
    assert kinds.count("delivered") == 1  # six deliveries of one dispatch, one row
    env.clock.advance(6)  # the sixth lease runs out: redelivered
    b.tick()
    [again] = inbox.take()
    assert again.delivery_count == 2
    b.ack_many(member, [(again.partition, again.offset)])
    last = got[5].id
    assert [e.event for e in tracer.message(last)] == [
        "published", "delivered", "lease-expired", "redelivered", "acked",
    ]  # fmt: skip
    first = tracer.message(got[0].id)
    assert [e.event for e in first] == ["published", "delivered", "acked"]
    assert {(e.group, e.member, e.partition, e.offset) for e in first[1:]} == {
        ("g", member, got[0].partition, got[0].offset)
    }
    assert len(tracer) == tracer.seq == 6 + 6 + 5 + 1 + 1 + 1
    copy = Tracer(size=1000)  # what a persister writes reads back the same
    copy.restore(tracer.rows_after(0), tracer.consumers)
    assert [e.event for e in copy.message(last)] == [e.event for e in tracer.message(last)]
