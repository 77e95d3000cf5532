"""Redrive of a group's dead letters: back to that group only, under the original id and
headers, as a fresh delivery; redriven once, also across a restart (memory and disk)."""

from __future__ import annotations

import pytest

from tidings.errors import NotFound
from tidings.model import GroupSpec, Outgoing

from .conftest import Env, join


def _setup(env: Env):
    b = env.broker
    from tidings.model import TopicSpec

    b.create_topic(TopicSpec(name="refunds"))
    billing = GroupSpec(topic="refunds", name="billing", max_deliveries=1)
    audit = GroupSpec(topic="refunds", name="audit")
    b.create_group(billing)
    b.create_group(audit)
    [r] = b.publish(
        "refunds", [Outgoing(b"o-2", key="o-2", headers={"x-order": "o-2"}, msg_id="refund-o-2")]
    )
    return b, billing, audit, r


def _kill_in_billing(b, billing) -> None:
    member, inbox = join(b, billing)
    [d] = inbox.take()
    b.reject(member, d.partition, d.offset, "card declined")
    b.leave(member)


def test_redrive_goes_to_its_group_only_with_id_headers_and_fresh_count(env: Env) -> None:
    b, billing, audit, r = _setup(env)
    _kill_in_billing(b, billing)
    am, ainbox = join(b, audit)
    [first] = ainbox.take()
    b.ack(am, first.partition, first.offset)

    [letter] = b.dead_letters("refunds", "billing")
    assert (letter.id, letter.msg_id, letter.reason) == (r.id, "refund-o-2", "rejected")
    assert letter.headers == {"x-order": "o-2"}
    assert b.redrive("refunds", "billing") == [r.id]

    bm, binbox = join(b, billing)
    [again] = binbox.take()
    assert (again.id, again.msg_id, again.body, again.key) == (r.id, "refund-o-2", b"o-2", "o-2")
    assert again.headers["x-order"] == "o-2"
    assert not any(k.startswith("tidings-dlq-") for k in again.headers)
    assert again.headers == {"x-order": "o-2"}  # the redrive's own header is not shown
    assert again.delivery_count == 1  # a fresh delivery for billing
    b.ack(bm, again.partition, again.offset)
    assert ainbox.take() == []  # audit does not get it again
    assert b.group_info("refunds", "audit").lag == 0
    assert b.dead_letters("refunds", "billing") == []
    assert b.redrive("refunds", "billing") == []


def test_redrive_selected_ids_and_unknown_ids(env: Env) -> None:
    b, billing, _audit, r = _setup(env)
    _kill_in_billing(b, billing)
    with pytest.raises(NotFound, match="no dead letter with id nope"):
        b.redrive("refunds", "billing", ids=["nope"])
    assert len(b.dead_letters("refunds", "billing")) == 1
    assert b.redrive("refunds", "billing", ids=[r.id]) == [r.id]
    with pytest.raises(NotFound, match="already redriven"):
        b.redrive("refunds", "billing", ids=[r.id])


def test_redriven_is_remembered_across_restart(env: Env) -> None:
    b, billing, _audit, r = _setup(env)
    _kill_in_billing(b, billing)
    b.redrive("refunds", "billing")
    b.flush_acks()
    b = env.reopen(crash=False)
    assert b.dead_letters("refunds", "billing") == []
    _member, inbox = join(b, billing)
    assert [d.id for d in inbox.take()] == [r.id]


def test_no_dead_letters_yet_and_unknown_group(env: Env) -> None:
    b, _billing, _audit, _r = _setup(env)
    assert b.dead_letters("refunds", "billing") == []
    with pytest.raises(NotFound):
        b.dead_letters("refunds", "nobody")


def test_redrive_is_not_deduplicated_within_the_window(env: Env) -> None:
    b, billing, _audit, r = _setup(env)
    assert b._topic("refunds").spec.dedup_window > 0  # the original msg_id is remembered
    _kill_in_billing(b, billing)
    b.redrive("refunds", "billing")
    _member, inbox = join(b, billing)
    assert [(d.id, d.msg_id) for d in inbox.take()] == [(r.id, "refund-o-2")]
    # a producer retrying the original afterwards is still deduplicated
    [again] = b.publish("refunds", [Outgoing(b"o-2", key="o-2", msg_id="refund-o-2")])
    assert again.duplicate


def test_discard_drops_dead_letters_without_redelivery(env: Env) -> None:
    b, billing, _audit, r = _setup(env)
    _kill_in_billing(b, billing)
    with pytest.raises(NotFound, match="no dead letter with id nope"):
        b.discard_dead_letters("refunds", "billing", ids=["nope"])
    assert b.discard_dead_letters("refunds", "billing") == [r.id]
    assert b.dead_letters("refunds", "billing") == []
    assert b.redrive("refunds", "billing") == []
    _member, inbox = join(b, billing)
    assert inbox.take() == []
    b.flush_acks()
    b = env.reopen(crash=False)
    assert b.dead_letters("refunds", "billing") == []


def test_a_redriven_message_that_dies_again_can_be_redriven_again(env: Env) -> None:
    b, billing, _audit, r = _setup(env)
    _kill_in_billing(b, billing)
    assert b.redrive("refunds", "billing") == [r.id]
    _kill_in_billing(b, billing)  # the cause was not fixed: it dies again
    [letter] = b.dead_letters("refunds", "billing")  # listed once, as it is now
    assert (letter.id, letter.headers) == (r.id, {"x-order": "o-2"})
    assert b.redrive("refunds", "billing") == [r.id]
    _member, inbox = join(b, billing)
    [again] = inbox.take()
    assert (again.id, again.delivery_count) == (r.id, 1)


def test_an_id_past_the_search_cap_says_so(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from tidings.broker import redrive

    monkeypatch.setattr(redrive, "MAX_REDRIVE", 2)
    b, billing, _audit, _r = _setup(env)
    for body in (b"a", b"b"):
        b.publish("refunds", [Outgoing(body)])
    member, inbox = join(b, billing, prefetch=10)
    for d in inbox.take():
        b.reject(member, d.partition, d.offset, "no")
    b.leave(member)
    letters = b.dead_letters("refunds", "billing", limit=10)
    assert len(letters) == 3
    with pytest.raises(NotFound, match="only the oldest 2 are searched"):
        b.redrive("refunds", "billing", ids=[letters[-1].id])
    assert len(b.redrive("refunds", "billing")) == 2  # at most the cap per call
    assert b.redrive("refunds", "billing", ids=[letters[-1].id]) == [letters[-1].id]
