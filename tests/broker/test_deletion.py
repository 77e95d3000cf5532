"""Deleting one message by id and purging a topic (tidings.broker.deletion), on memory and
disk: no group delivers a deleted message again, wherever it was (leased, ready, delayed,
behind its key, not loaded), also after a restart; a purge empties the topic and its groups."""

from __future__ import annotations

import pytest

from tidings.errors import LeaseLost, NotFound
from tidings.model import GroupSpec, TopicSpec

from .conftest import Env, bodies, drain, join, msgs


def _topic(env: Env, partitions: int = 1):
    b = env.broker
    b.create_topic(TopicSpec(name="orders", partitions=partitions))
    return b


def test_a_deleted_message_is_delivered_to_no_group_also_after_a_restart(env: Env) -> None:
    b = _topic(env)
    billing = GroupSpec(topic="orders", name="billing")
    audit = GroupSpec(topic="orders", name="audit")
    b.create_group(billing)
    b.create_group(audit)
    receipts = b.publish("orders", msgs("a", "b", "c"))
    p, offset, groups = b.delete_message("orders", receipts[1].id)
    assert (p, offset, sorted(groups)) == (0, 1, ["audit", "billing"])
    assert b.delete_message("orders", receipts[1].id)[2] == []  # settled already
    b = env.reopen()
    for spec in (billing, audit):
        member, inbox = join(b, spec)
        assert bodies(drain(b, member, inbox)) == [b"a", b"c"]
    assert b.group_info("orders", "billing").lag == 0


def test_deleting_a_leased_message_ends_its_lease(env: Env) -> None:
    b = _topic(env)
    spec = GroupSpec(topic="orders", name="billing", lease=30)
    [r] = b.publish("orders", msgs("a"))
    member, inbox = join(b, spec)
    [d] = inbox.take()
    assert b.group_info("orders", "billing").in_flight == 1
    assert b.delete_message("orders", r.id)[2] == ["billing"]
    info = b.group_info("orders", "billing")
    assert (info.in_flight, info.ready, info.lag, info.acked_total) == (0, 0, 0, 0)
    with pytest.raises(LeaseLost):
        b.ack(member, d.partition, d.offset)
    env.clock.advance(60)  # its old lease timer does not bring it back
    b.tick()
    assert inbox.take() == []


def test_ready_delayed_and_key_waiting_messages_are_taken_out(env: Env) -> None:
    b = _topic(env)
    spec = GroupSpec(topic="orders", name="billing", key_ordered=True)
    b.create_group(spec)
    _, waiting, _ = b.publish("orders", msgs("k1", "k2", "k3", key="k"))
    [delayed] = b.publish("orders", msgs("delayed", delay=30))
    member, inbox = join(b, spec, prefetch=5)
    [d] = inbox.take()
    assert d.body == b"k1"  # k2 and k3 wait behind their key, 'delayed' for its time
    assert b.group_info("orders", "billing").delayed == 1
    assert b.delete_message("orders", waiting.id)[2] == ["billing"]
    assert b.delete_message("orders", delayed.id)[2] == ["billing"]
    assert b.group_info("orders", "billing").delayed == 0
    b.ack(member, d.partition, d.offset)
    [k3] = inbox.take()
    assert k3.body == b"k3"
    b.ack(member, k3.partition, k3.offset)
    env.clock.advance(60)
    b.tick()
    assert inbox.take() == []


def test_an_unknown_id_is_not_found(env: Env) -> None:
    b = _topic(env)
    b.publish("orders", msgs("a"))
    with pytest.raises(NotFound, match="no message with id"):
        b.delete_message("orders", "0123456789abcdef")
    with pytest.raises(NotFound):
        b.delete_message("orders", "not-an-id")


def test_a_message_is_found_in_any_partition(env: Env) -> None:
    b = _topic(env, partitions=3)
    spec = GroupSpec(topic="orders", name="billing")
    b.create_group(spec)
    receipts = b.publish("orders", msgs(*[f"m{i}" for i in range(30)]))
    target = next(r for r in receipts if r.partition == 2)
    assert b.delete_message("orders", target.id)[:2] == (2, target.offset)
    member, inbox = join(b, spec, prefetch=100)
    got = drain(b, member, inbox)
    assert len(got) == 29 and target.id not in {d.id for d in got}


def test_purge_empties_the_topic_and_every_group(env: Env) -> None:
    b = _topic(env, partitions=2)
    shared = GroupSpec(topic="orders", name="billing")
    ordered = GroupSpec(topic="orders", name="ledger", mode="ordered")
    b.create_group(ordered)
    b.publish("orders", msgs(*[f"m{i}" for i in range(20)]))
    member, inbox = join(b, shared, prefetch=5)
    held = inbox.take()
    assert len(held) == 5
    assert b.purge_topic("orders") == 20
    assert b.topic_info("orders").messages == 0
    for name in ("billing", "ledger"):
        info = b.group_info("orders", name)
        assert (info.ready, info.in_flight, info.lag) == (0, 0, 0), name
    with pytest.raises(LeaseLost):
        b.ack(member, held[0].partition, held[0].offset)
    b.publish("orders", msgs("after"))
    assert bodies(inbox.take()) == [b"after"]  # the member stays subscribed
    b = env.reopen()
    lm, linbox = join(b, ordered)
    assert bodies(drain(b, lm, linbox)) == [b"after"]


def test_settlement_counts_survive_a_reset_and_a_purge(env: Env) -> None:
    b = _topic(env)
    spec = GroupSpec(topic="orders", name="billing")
    b.publish("orders", msgs("a", "b"))
    member, inbox = join(b, spec)
    first, second = inbox.take()
    b.ack(member, first.partition, first.offset)
    b.nack(member, second.partition, second.offset, delay=60)
    counts = {"acked": 1, "nacked": 1}
    b.reset_group("orders", "billing", "latest")
    assert {k: v for k, v in b.group_info("orders", "billing").settlements.items() if v} == counts
    b.purge_topic("orders")
    assert {k: v for k, v in b.group_info("orders", "billing").settlements.items() if v} == counts


def test_a_group_created_or_reset_later_never_sees_a_deleted_message(env: Env) -> None:
    """The deletion is the topic's, not only its groups' of the moment: a group created from
    earliest after it, or a group reset to earliest, starts with the deleted offset settled,
    also after a restart."""
    b = _topic(env, partitions=2)
    billing = GroupSpec(topic="orders", name="billing")
    b.create_group(billing)
    receipts = b.publish("orders", msgs(*[f"m{i}" for i in range(12)]))
    gone = [receipts[1], receipts[2], receipts[7]]  # two contiguous ones, and one apart
    for r in gone:
        b.delete_message("orders", r.id)
    kept = {f"m{i}".encode() for i in range(12)} - {f"m{i}".encode() for i in (1, 2, 7)}

    late = GroupSpec(topic="orders", name="late", start="earliest")
    b.create_group(late)
    member, inbox = join(b, late, prefetch=100)
    assert set(bodies(drain(b, member, inbox))) == kept

    b = env.reopen()
    later = GroupSpec(topic="orders", name="later", start="earliest")
    b.create_group(later)
    member, inbox = join(b, later, prefetch=100)
    assert set(bodies(drain(b, member, inbox))) == kept
    b.reset_group("orders", "late", "earliest")
    member, inbox = join(b, late, prefetch=100)
    assert set(bodies(drain(b, member, inbox))) == kept
    assert b.group_info("orders", "late").lag == 0
    # a second delete of the same message changes nothing and is no error
    assert b.delete_message("orders", gone[0].id)[2] == []
    assert all(b.is_deleted("orders", r.partition, r.offset) for r in gone)
    assert not b.is_deleted("orders", receipts[0].partition, receipts[0].offset)


def test_a_deleted_dead_letter_is_neither_listed_nor_redriven(env: Env) -> None:
    b = _topic(env)
    billing = GroupSpec(topic="orders", name="billing", max_deliveries=1)
    b.create_group(billing)
    first, second = b.publish("orders", msgs("poison", "bad"))
    member, inbox = join(b, billing)
    for d in inbox.take():
        b.reject(member, d.partition, d.offset, "unusable")
    b.leave(member)
    letters = b.dead_letters("orders", "billing")
    assert {letter.id for letter in letters} == {first.id, second.id}
    dlq = b.dead_letter_topic_of("orders", "billing")
    stored = b.store.read(dlq, 0, 0, 10)  # what browsing the dead-letter topic shows
    [poison] = [r for r in stored if r.body == b"poison"]
    b.delete_message(dlq, poison.id)  # an operator deletes it there
    b = env.reopen()
    assert [letter.id for letter in b.dead_letters("orders", "billing")] == [second.id]
    assert b.redrive("orders", "billing") == [second.id]
