"""How a handling ends decides the message's fate: ack, nack with backoff until max
deliveries, reject, Retry; typed payloads, invalid payloads, raw bytes, codecs."""

from __future__ import annotations

import tidings
from tidings import headers as h
from tidings.service import Backoff, Reject, Retry
from tidings.testing import ServiceKit

from .models import OrderRefunded


async def test_typed_handler_is_acked_with_context():
    svc = tidings.Service("payment")
    seen = []

    @svc.on("order.refunded")
    async def refund(event: OrderRefunded, ctx: tidings.Context) -> None:
        seen.append((event, ctx.delivery_count, ctx.message_type, ctx.headers[h.CONTENT_TYPE]))

    async with ServiceKit(svc) as kit:
        receipt = await kit.publish("order.refunded", OrderRefunded(order_id="o-1"), key="o-1")
        [done] = await kit.handled("order.refunded")
        assert done.outcome == "ok" and done.ctx.message_id == done.ctx.message.msg_id
        info = await kit.client.group_info("order.refunded", "payment")
        assert info.in_flight == 0 and info.lag == 0
    assert seen == [(OrderRefunded(order_id="o-1"), 1, "event", "application/json")]
    assert receipt.topic == "order.refunded"


async def test_invalid_payload_is_dead_lettered_at_once_with_the_error():
    svc = tidings.Service("payment")

    @svc.on("order.refunded", max_deliveries=5)
    async def refund(event: OrderRefunded) -> None:
        raise AssertionError("never called")

    async with ServiceKit(svc) as kit:
        await kit.publish("order.refunded", {"order_id": "o-1", "amount": "a lot"})
        [done] = await kit.handled("order.refunded")
        assert done.outcome == "invalid"
        [dead] = await kit.dead_letters("order.refunded", "payment")
        assert dead.headers[h.DLQ_REASON] == "rejected"
        assert "amount" in dead.headers[h.DLQ_ERROR] and dead.headers[h.DLQ_DELIVERIES] == "1"


async def test_bytes_handler_gets_the_body_untouched():
    svc = tidings.Service("audit")
    bodies = []

    @svc.on("raw")
    async def raw(body: bytes) -> None:
        bodies.append(body)

    async with ServiceKit(svc) as kit:
        await kit.client.publish("raw", b"\xff\x00 not json")
        await kit.handled("raw", outcome="ok")
    assert bodies == [b"\xff\x00 not json"]


async def test_failure_retries_with_backoff_then_dead_letters_with_the_exception_text():
    svc = tidings.Service("payment", backoff=Backoff(initial=10, factor=2, jitter=0))
    attempts = []

    @svc.on("order.refunded", max_deliveries=3)
    async def refund(event: OrderRefunded, ctx: tidings.Context) -> None:
        attempts.append(ctx.delivery_count)
        raise RuntimeError(f"bank offline (attempt {ctx.delivery_count})")

    async with ServiceKit(svc, clock=True) as kit:
        await kit.publish("order.refunded", OrderRefunded(order_id="o-1"))
        await kit.handled("order.refunded", count=1)
        info = await kit.client.group_info("order.refunded", "payment")
        assert info.delayed == 1  # nacked with a 10 s backoff, not redelivered yet
        await kit.advance(9)
        assert (await kit.client.group_info("order.refunded", "payment")).delayed == 1
        await kit.advance(1)
        await kit.handled("order.refunded", count=2)
        await kit.advance(20)  # second backoff: 20 s
        await kit.handled("order.refunded", count=3)
        [dead] = await kit.dead_letters("order.refunded", "payment")
    assert attempts == [1, 2, 3]
    assert dead.headers[h.DLQ_REASON] == "max-deliveries"
    assert "RuntimeError: bank offline (attempt 3)" in dead.headers[h.DLQ_ERROR]


async def test_reject_dead_letters_at_once():
    svc = tidings.Service("payment")

    @svc.on("order.refunded")
    async def refund(event: OrderRefunded) -> None:
        raise Reject("order was never paid")

    async with ServiceKit(svc) as kit:
        await kit.publish("order.refunded", OrderRefunded(order_id="o-1"))
        [dead] = await kit.dead_letters("order.refunded", "payment")
        assert dead.headers[h.DLQ_ERROR] == "order was never paid"
        assert [r.outcome for r in kit.records] == ["reject"]


async def test_retry_uses_the_requested_delay():
    svc = tidings.Service("payment")

    @svc.on("order.refunded")
    async def refund(event: OrderRefunded, ctx: tidings.Context) -> None:
        if ctx.delivery_count == 1:
            raise Retry(delay=42)

    async with ServiceKit(svc, clock=True) as kit:
        await kit.publish("order.refunded", OrderRefunded(order_id="o-1"))
        await kit.handled("order.refunded", outcome="retry")
        await kit.advance(41)
        assert (await kit.client.group_info("order.refunded", "payment")).delayed == 1
        await kit.advance(1)
        [done] = await kit.handled("order.refunded", outcome="ok")
        assert done.ctx.delivery_count == 2


async def test_msgpack_producer_json_consumer():
    producer = tidings.Service("producer", codec="msgpack")
    consumer = tidings.Service("consumer")

    @consumer.on("order.refunded")
    async def refund(event: OrderRefunded) -> None: ...

    async with ServiceKit(producer, consumer) as kit:
        await producer.publish("order.refunded", OrderRefunded(order_id="o-9", amount=2.5))
        [done] = await kit.handled("order.refunded")
        assert done.ctx.headers[h.CONTENT_TYPE] == "application/msgpack"
        assert done.ctx.payload == OrderRefunded(order_id="o-9", amount=2.5)


async def test_send_marks_a_command():
    svc = tidings.Service("inventory")

    @svc.on("inventory.restock")
    async def restock(cmd: dict, ctx: tidings.Context) -> None: ...

    async with ServiceKit(svc) as kit:
        await kit.send("inventory.restock", {"sku": "A-1", "qty": 3})
        [done] = await kit.handled("inventory.restock")
        assert done.ctx.message_type == "command" and done.ctx.payload == {"sku": "A-1", "qty": 3}
