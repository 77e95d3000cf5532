"""Request/reply and scatter-gather between services: typed replies, remote errors,
timeouts."""

from __future__ import annotations

import pytest

import tidings
from tidings.errors import RemoteError, RequestTimeout
from tidings.testing import ServiceKit

from .models import Quote, RefundStatus, StatusQuery


def payment_service() -> tidings.Service:
    svc = tidings.Service("payment")

    @svc.reply("payment.status")
    async def status(query: StatusQuery) -> RefundStatus:
        if query.order_id == "missing":
            raise LookupError("no order 'missing'")
        return RefundStatus(order_id=query.order_id, state="refunded")

    return svc


async def test_request_returns_the_typed_reply():
    async with ServiceKit(payment_service()) as kit:
        answer = await kit.request(
            "payment.status", StatusQuery(order_id="o-1"), returns=RefundStatus, timeout=5
        )
        assert answer == RefundStatus(order_id="o-1", state="refunded")
        [done] = await kit.handled("payment.status")
        assert done.ctx.message_type == "request" and done.result == answer


async def test_remote_failure_is_a_typed_remote_error():
    async with ServiceKit(payment_service()) as kit:
        with pytest.raises(RemoteError) as info:
            await kit.request("payment.status", StatusQuery(order_id="missing"), timeout=5)
        assert info.value.remote_type == "LookupError" and "no order" in info.value.message
        await kit.handled("payment.status", outcome="error")
        info_group = await kit.client.group_info("payment.status", "payment")
        assert info_group.in_flight == 0 and info_group.dead_lettered == 0  # answered, acked


async def test_invalid_request_is_answered_and_dead_lettered():
    async with ServiceKit(payment_service()) as kit:
        with pytest.raises(RemoteError) as info:
            await kit.request("payment.status", {"wrong": 1}, timeout=5)
        assert info.value.remote_type == "InvalidPayload" and "order_id" in info.value.message
        [dead] = await kit.dead_letters("payment.status", "payment")
        assert "order_id" in dead.headers["tidings-dlq-error"]


async def test_request_timeout():
    svc = tidings.Service("slow")

    @svc.reply("slow.op")
    async def never(query: dict) -> dict:
        raise tidings.Retry(delay=3600)  # never answers in time

    async with ServiceKit(svc) as kit:
        with pytest.raises(RequestTimeout, match=r"slow\.op"):
            await kit.request("slow.op", {"x": 1}, timeout=0.2)


async def test_scatter_collects_replies_from_every_responder_group():
    vendors = []
    for name, price in (("acme", 10.0), ("globex", 12.5), ("initech", 9.0)):
        svc = tidings.Service(name)

        @svc.reply("pricing.quote")
        async def quote(query: dict, _name=name, _price=price) -> Quote:
            return Quote(vendor=_name, price=_price * query["qty"])

        vendors.append(svc)
    async with ServiceKit(*vendors) as kit:
        quotes = await kit.scatter(
            "pricing.quote", {"qty": 2}, returns=Quote, timeout=5, max_replies=3
        )
        assert sorted(q.vendor for q in quotes) == ["acme", "globex", "initech"]
        assert all(isinstance(q, Quote) for q in quotes)
        some = await kit.scatter(
            "pricing.quote", {"qty": 1}, returns=Quote, timeout=5, max_replies=2
        )
        assert len(some) == 2


async def test_a_handler_can_call_another_service():
    payment = payment_service()
    orders = tidings.Service("orders")

    @orders.reply("orders.summary")
    async def summary(query: StatusQuery, ctx: tidings.Context) -> dict:
        status = await ctx.request("payment.status", query, returns=RefundStatus, timeout=5)
        return {"order": query.order_id, "payment": status.state}

    async with ServiceKit(payment, orders) as kit:
        answer = await kit.request("orders.summary", StatusQuery(order_id="o-7"), timeout=5)
        assert answer == {"order": "o-7", "payment": "refunded"}
