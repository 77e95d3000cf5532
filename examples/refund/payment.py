"""The payment service: refunds the money and answers ``payment.status`` requests."""

from __future__ import annotations

import tidings
from tidings.demo.models import REFUNDED, STATUS, OrderRefunded, RefundStatus, RefundStatusQuery

svc = tidings.Service("payment")
refunds: dict[str, float] = {}  # order id -> amount refunded


@svc.on(REFUNDED, idempotent=True, concurrency=8)
async def refund(event: OrderRefunded) -> None:
    refunds[event.order_id] = event.amount  # the call to the payment provider goes here


@svc.reply(STATUS)
async def status(query: RefundStatusQuery) -> RefundStatus:
    amount = refunds.get(query.order_id)
    state = "unknown" if amount is None else "refunded"
    return RefundStatus(order_id=query.order_id, state=state, amount=amount, worker="payment")
