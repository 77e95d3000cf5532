"""The shared TTL/delay header rules and the dead-letter copy (tidings.transports.rules.timing
and .deadletter)."""

from __future__ import annotations

import pytest

from tidings import headers as H
from tidings.errors import BadRequest
from tidings.model import GroupSpec, TopicSpec
from tidings.transports.rules import deadletter, timing


def test_ttl_and_delay_travel_as_seconds_text_and_count_from_the_stored_time():
    assert timing.ttl_text(None) is None
    assert timing.seconds(timing.ttl_text(1.5)) == 1.5
    with pytest.raises(BadRequest, match="ttl must be > 0"):
        timing.ttl_text(0)
    assert timing.delay_text(0) is None and timing.delay_text(-1) is None
    assert timing.seconds(timing.delay_text(2)) == 2.0
    assert timing.seconds("nonsense") is None and timing.seconds(None) is None
    assert timing.expires_at(100.0, 5.0) == 105.0 and timing.expires_at(100.0, None) is None
    assert timing.deliver_at(100.0, 2.0) == 102.0
    assert timing.remaining_delay(102.0, 101.0) == 1.0
    assert timing.remaining_delay(102.0, 103.0) == 0.0 and timing.remaining_delay(None, 1) == 0.0


def test_the_dead_letter_topic_and_its_copy():
    spec = GroupSpec(topic="orders", name="billing")
    assert deadletter.topic_of(spec) == "orders.billing.dlq"
    own = GroupSpec(topic="orders", name="billing", dead_letter_topic="poison")
    assert deadletter.topic_of(own) == "poison"
    source = TopicSpec(name="orders", replicas=3, storage="memory")
    dspec = deadletter.topic_spec(source, "orders.billing.dlq")
    assert (dspec.name, dspec.replicas, dspec.storage, dspec.partitions) == (
        "orders.billing.dlq",
        3,
        "memory",
        1,
    )
    out = deadletter.copy(
        spec,
        body=b"x",
        key="k",
        headers={"a": "1"},
        partition=2,
        offset=7,
        message_id="m1",
        msg_id="p1",
        reason="rejected",
        deliveries=2,
        error="boom" * 2000,
    )
    assert (out.body, out.key) == (b"x", "k")
    hd = out.headers
    assert hd["a"] == "1" and hd[H.DLQ_REASON] == "rejected" and hd[H.DLQ_DELIVERIES] == "2"
    assert (hd[H.DLQ_TOPIC], hd[H.DLQ_GROUP]) == ("orders", "billing")
    assert (hd[H.DLQ_PARTITION], hd[H.DLQ_OFFSET], hd[H.DLQ_ID]) == ("2", "7", "m1")
    assert hd[H.DLQ_MSG_ID] == "p1" and len(hd[H.DLQ_ERROR]) == H.MAX_ERROR_TEXT
