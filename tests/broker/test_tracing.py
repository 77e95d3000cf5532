"""Message tracing in the engine: the ring records a message's whole path (published with
its producer id, trace id and correlation id; delivered and redelivered with the count;
nacked, lease expired, acked, rejected, expired, dead-lettered with the copy's id), follows a
conversation by correlation or trace id, keeps only traced topics, stays bounded, samples
whole messages, and records nothing when tracing is off."""

from __future__ import annotations

from tidings import headers as H
from tidings.broker.tracing import Tracer
from tidings.model import GroupSpec, Outgoing, TopicSpec

from .conftest import Env, join

TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def kinds(events) -> list[str]:
    return [e.event for e in events]


def traced(env: Env, covers=lambda t: True, **kw) -> Tracer:
    tracer = Tracer(covers=covers, **kw)
    env.broker.set_tracer(tracer)
    return tracer


def test_a_message_path_from_publish_to_dead_letter(env: Env) -> None:
    b = env.broker
    tracer = traced(env)
    b.create_topic(TopicSpec(name="orders"))
    g = GroupSpec(topic="orders", name="billing", lease=5, max_deliveries=3)
    member, inbox = join(b, g, prefetch=2)
    tracer.origin = "conn-1 (127.0.0.1:5555)"
    headers = {H.TRACEPARENT: TRACE, H.CORRELATION_ID: "c-1"}
    [receipt] = b.publish("orders", [Outgoing(b"x", key="k", headers=headers, msg_id="p-1")])
    [d] = inbox.take()
    b.nack(member, d.partition, d.offset, delay=0, error="db down")
    [d] = inbox.take()
    env.clock.advance(5)  # the lease of the second delivery runs out
    b.tick()
    [d] = inbox.take()
    assert d.delivery_count == 3
    b.reject(member, d.partition, d.offset, "bad order")

    events = tracer.message(receipt.id)
    assert kinds(events) == [
        "published", "delivered", "nacked", "redelivered", "lease-expired", "redelivered",
        "rejected", "dead-lettered",
    ]  # fmt: skip
    pub = events[0]
    assert (pub.origin, pub.msg_id, pub.key) == ("conn-1 (127.0.0.1:5555)", "p-1", "k")
    assert (pub.trace_id, pub.parent_id) == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
    assert pub.correlation_id == "c-1"
    assert [e.deliveries for e in events[1:]] == [1, 1, 2, 2, 3, 3, 3]
    assert {e.member for e in events[1:-1]} == {member} and events[2].reason == "db down"
    dead = events[-1]
    assert (dead.reason, dead.target) == ("rejected", "orders.billing.dlq")
    assert tracer.message("p-1") == events  # by the producer id too
    # the dead-letter copy is a message of its own, published by the broker, that names the
    # original; the original's related events include it
    copy = tracer.message(dead.target_id)
    assert kinds(copy) == ["published"] and copy[0].source_id == receipt.id
    assert copy[0].origin == "broker (dead letter)"
    assert [e.id for e in tracer.related(events)] == [dead.target_id]


def test_acked_and_expired(env: Env) -> None:
    b = env.broker
    tracer = traced(env)
    b.create_topic(TopicSpec(name="t"))
    b.publish("t", [Outgoing(b"old", ttl=1)])
    env.clock.advance(2)
    member, inbox = join(b, GroupSpec(topic="t", name="g", dead_letter_expired=True))
    [receipt] = b.publish("t", [Outgoing(b"new")])
    [d] = inbox.take()
    b.ack(member, d.partition, d.offset)
    assert kinds(tracer.message(receipt.id)) == ["published", "delivered", "acked"]
    expired = [e for e in tracer.topic("t")[0] if e.offset == 0]
    assert kinds(expired) == ["published", "expired", "dead-lettered"]
    assert expired[-1].reason == "expired"


def test_a_conversation_by_correlation_or_trace_id(env: Env) -> None:
    b = env.broker
    tracer = traced(env)
    for name in ("quotes", "replies", "other"):
        b.create_topic(TopicSpec(name=name))
    request = {H.CORRELATION_ID: "req-7", H.REPLY_TO: "replies", H.TRACEPARENT: TRACE}
    [q] = b.publish("quotes", [Outgoing(b"?", headers=request)])
    child = TRACE.replace("b7ad6b7169203331", "00f067aa0ba902b7")
    [r] = b.publish(
        "replies", [Outgoing(b"!", headers={H.CORRELATION_ID: "req-7", H.TRACEPARENT: child})]
    )
    [_] = b.publish("other", [Outgoing(b"unrelated", headers={H.CORRELATION_ID: "x"})])
    assert {e.id for e in tracer.conversation("req-7")} == {q.id, r.id}
    assert {e.id for e in tracer.conversation("0AF7651916CD43DD8448EB211C80319C")} == {q.id, r.id}
    assert [e.id for e in tracer.related(tracer.message(q.id))] == [r.id]
    assert tracer.message(q.id)[0].reply_to == "replies"


def test_only_covered_topics_bounded_and_follow(env: Env) -> None:
    b = env.broker
    tracer = traced(env, covers=lambda t: t.startswith("orders"), size=10)
    b.create_topic(TopicSpec(name="orders"))
    b.create_topic(TopicSpec(name="logs"))
    b.publish("logs", [Outgoing(b"l")] * 5)
    assert tracer.seq == 0
    b.publish("orders", [Outgoing(b"%d" % i) for i in range(25)])
    assert len(tracer.events) == 10 and tracer.dropped == 15
    events, last = tracer.topic("orders", after=20)
    assert [e.offset for e in events] == [20, 21, 22, 23, 24] and last == 25
    events, last = tracer.topic("orders", after=16, limit=2)  # the rest follows from 18
    assert [e.seq for e in events] == [17, 18] and last == 18
    assert tracer.topic(None, after=tracer.seq) == ([], tracer.seq)
    events, last = tracer.topic("orders", after=-1, limit=3)
    assert [e.offset for e in events] == [22, 23, 24] and last == 25
    assert tracer.topic(None, after=20, visible=lambda t: t != "orders") == ([], 25)
    b.set_tracer(None)  # off: nothing more is recorded, on any topic
    b.publish("orders", [Outgoing(b"later")])
    assert tracer.seq == 25


def test_sampling_keeps_whole_messages(env: Env) -> None:
    b = env.broker
    tracer = traced(env, sample=0.25)
    b.create_topic(TopicSpec(name="t"))
    member, inbox = join(b, GroupSpec(topic="t", name="g"), prefetch=1000)
    receipts = b.publish("t", [Outgoing(b"x")] * 400)
    for d in inbox.take():
        b.ack(member, d.partition, d.offset)
    kept = {e.id for e in tracer.events}
    assert 40 < len(kept) < 160  # about a quarter
    for rid in kept:
        assert kinds(tracer.message(rid)) == ["published", "delivered", "acked"]
    assert kept <= {r.id for r in receipts}


def test_a_topic_created_later_is_traced_when_covered(env: Env) -> None:
    b = env.broker
    tracer = traced(env, covers=lambda t: t == "late")
    b.create_topic(TopicSpec(name="late"))
    [r] = b.publish("late", [Outgoing(b"x")])
    assert kinds(tracer.message(r.id)) == ["published"]
    b = env.reopen()  # a broker opened with a tracer traces the recovered topics
    b.set_tracer(tracer)
    [r2] = b.publish("late", [Outgoing(b"y")])
    assert kinds(tracer.message(r2.id)) == ["published"]


def test_a_redriven_dead_letter_goes_on_in_the_same_trace(env: Env) -> None:
    b = env.broker
    tracer = traced(env)
    b.create_topic(TopicSpec(name="refunds"))
    g = GroupSpec(topic="refunds", name="billing", max_deliveries=1)
    member, inbox = join(b, g)
    [r] = b.publish("refunds", [Outgoing(b"o-2", msg_id="refund-o-2")])
    [d] = inbox.take()
    b.reject(member, d.partition, d.offset, "card declined")
    assert b.redrive("refunds", "billing") == [r.id]
    [again] = inbox.take()
    assert again.id == r.id
    b.ack(member, again.partition, again.offset)
    events = tracer.message("refund-o-2")
    assert kinds(events) == [
        "published", "delivered", "rejected", "dead-lettered", "redriven", "delivered", "acked",
    ]  # fmt: skip
    redriven = events[4]
    assert (redriven.group, redriven.msg_id, redriven.offset) == ("billing", "refund-o-2", 1)


def test_a_member_is_named_by_its_connection_and_few_are_remembered(env: Env) -> None:
    from tidings.broker import tracing

    b = env.broker
    tracer = traced(env)
    b.create_topic(TopicSpec(name="t"))
    member, _inbox = join(b, GroupSpec(topic="t", name="g"))
    tracer.joined(member, "connection c-9 (127.0.0.1:4000)")
    [r] = b.publish("t", [Outgoing(b"x")])
    [delivered] = [e for e in tracer.message(r.id) if e.event == "delivered"]
    assert delivered.consumer == "connection c-9 (127.0.0.1:4000)"
    for i in range(tracing.MAX_CONSUMERS + 5):
        tracer.joined(f"m-{i}", "x")
    assert len(tracer.consumers) == tracing.MAX_CONSUMERS and member not in tracer.consumers


def test_a_delayed_message_that_expires_is_traced(env: Env) -> None:
    b = env.broker
    tracer = traced(env)
    b.create_topic(TopicSpec(name="t"))
    _member, inbox = join(b, GroupSpec(topic="t", name="g"))
    [r] = b.publish("t", [Outgoing(b"late", delay=2, ttl=1)])  # waits with no record in memory
    env.clock.advance(3)
    b.tick()
    assert inbox.items == []
    assert kinds(tracer.message(r.id)) == ["published", "expired"]
