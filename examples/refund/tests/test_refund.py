"""The refund services on ``memory://`` with the test kit: broadcast, idempotency, dead
letters and request/reply."""

from __future__ import annotations

from examples.refund import inventory, notification, payment
from tidings.demo.models import REFUNDED, STATUS, OrderRefunded, RefundStatus, RefundStatusQuery
from tidings.testing import ServiceKit

EVENT = OrderRefunded(order_id="o-1", customer="c-1", sku="sku-9", quantity=2, amount=12.5)


async def test_every_service_gets_the_event_once():
    async with ServiceKit(inventory.svc, payment.svc, notification.svc) as kit:
        await kit.publish(REFUNDED, EVENT, msg_id="o-1")
        await kit.handled(REFUNDED, count=3)
        assert inventory.stock["sku-9"] == 2
        assert payment.refunds == {"o-1": 12.5}
        assert len(notification.sent) == 1


async def test_a_resent_event_is_skipped_by_its_id():
    payment.svc.topic(REFUNDED, dedup_window=0)  # no broker dedup: the consumer must skip it
    try:
        async with ServiceKit(payment.svc) as kit:
            await kit.publish(REFUNDED, EVENT, msg_id="o-1")
            await kit.handled(REFUNDED, outcome="ok")
            payment.refunds.clear()
            await kit.publish(REFUNDED, EVENT, msg_id="o-1")
            await kit.handled(REFUNDED, outcome="duplicate")
            assert payment.refunds == {}  # not refunded twice
    finally:
        payment.svc.topics.pop(REFUNDED, None)


async def test_malformed_event_is_dead_lettered():
    async with ServiceKit(payment.svc) as kit:
        await kit.publish(REFUNDED, {"order_id": "bad", "amount": "lots"})
        [dead] = await kit.dead_letters(REFUNDED, "payment")
        assert "invalid" in dead.headers["tidings-dlq-reason"] + dead.headers.get(
            "tidings-dlq-error", ""
        )
        assert payment.refunds == {}


async def test_status_request():
    async with ServiceKit(payment.svc) as kit:
        await kit.publish(REFUNDED, EVENT)
        await kit.handled(REFUNDED)
        answer = await kit.request(STATUS, RefundStatusQuery(order_id="o-1"), returns=RefundStatus)
        assert answer.state == "refunded" and answer.amount == 12.5
        unknown = await kit.request(STATUS, RefundStatusQuery(order_id="o-2"), returns=RefundStatus)
        assert unknown.state == "unknown"
