"""The shared receipt rules (tidings.transports.rules.admission and .settling): what a transport
does with a message before the application sees it, and when a nack dead-letters. The same
rules run on nats:// and redis://; the conformance suite checks them end to end, these pin the
order and the counts on their own."""

from __future__ import annotations

from tidings.model import GroupSpec
from tidings.transports.rules.admission import admit, past_last_lease
from tidings.transports.rules.settling import on_nack, on_reject

G = GroupSpec(topic="t", name="g", max_deliveries=3)
NOW = 1_000_000.0


def test_a_fresh_delivery_is_delivered():
    assert admit(G, 1, now=NOW).action == "deliver"
    assert admit(G, 3, now=NOW).action == "deliver"  # the last allowed delivery


def test_a_delivery_past_the_last_lease_dead_letters_counting_the_deliveries_made():
    v = admit(G, 4, now=NOW)
    assert (v.action, v.reason, v.deliveries) == ("dead-letter", "max-deliveries", 3)
    assert past_last_lease(4, 3) and not past_last_lease(3, 3)
    assert not past_last_lease(1000, 0)  # 0 = unlimited
    assert admit(GroupSpec(topic="t", name="g", max_deliveries=0), 1000, now=NOW).action == (
        "deliver"
    )


def test_the_last_lease_wins_over_ttl_and_delay():
    v = admit(G, 4, now=NOW, expires_at=NOW - 1, deliver_at=NOW + 10)
    assert v.action == "dead-letter" and v.reason == "max-deliveries"


def test_a_redrive_for_another_group_is_dropped_and_for_this_group_delivered():
    assert admit(G, 1, now=NOW, redrive_group="other").action == "drop"
    assert admit(G, 1, now=NOW, redrive_group="g").action == "deliver"


def test_ttl_is_checked_at_receipt():
    assert admit(G, 1, now=NOW, expires_at=NOW).action == "drop"  # expires at that instant
    assert admit(G, 1, now=NOW, expires_at=NOW + 0.001).action == "deliver"
    keep = GroupSpec(topic="t", name="g", dead_letter_expired=True)
    v = admit(keep, 2, now=NOW, expires_at=NOW - 5)
    assert (v.action, v.reason, v.deliveries) == ("dead-letter", "expired", 1)


def test_expiry_wins_over_a_delay():
    assert admit(G, 1, now=NOW, expires_at=NOW - 1, deliver_at=NOW + 5).action == "drop"


def test_a_delayed_message_is_deferred_for_what_is_left_of_its_delay():
    v = admit(G, 1, now=NOW, deliver_at=NOW + 2.5)
    assert v.action == "defer" and v.delay == 2.5
    assert admit(G, 1, now=NOW, deliver_at=NOW).action == "deliver"


def test_a_nack_redelivers_until_the_last_allowed_delivery_then_dead_letters():
    assert on_nack(G, 1).action == "defer" and on_nack(G, 1).delay == 0.0
    assert on_nack(G, 2, delay=1.5).delay == 1.5
    assert on_nack(G, 2, delay=-3).delay == 0.0
    v = on_nack(G, 3, delay=1.0)
    assert (v.action, v.reason, v.deliveries) == ("dead-letter", "max-deliveries", 3)
    unlimited = GroupSpec(topic="t", name="g", max_deliveries=0)
    assert on_nack(unlimited, 10_000).action == "defer"


def test_a_reject_dead_letters_at_once():
    v = on_reject(1)
    assert (v.action, v.reason, v.deliveries) == ("dead-letter", "rejected", 1)
