"""The refund story's messages, shared by ``tidings demo`` and ``examples/refund``."""

from __future__ import annotations

from pydantic import BaseModel, Field

REFUNDED = "order.refunded"  # event: the order service refunded an order
REFUND = "order.refund"  # command: refund an order (POST /refunds through the gateway)
STATUS = "payment.status"  # request/reply: what happened to a refund?


class OrderRefunded(BaseModel):
    """Published by the order service once per refunded order."""

    order_id: str
    customer: str
    sku: str
    quantity: int = Field(ge=1)
    amount: float = Field(gt=0)


class RefundStatusQuery(BaseModel):
    order_id: str


class RefundStatus(BaseModel):
    """The payment service's answer: ``refunded`` (by which worker) or ``unknown``."""

    order_id: str
    state: str
    amount: float | None = None
    worker: str | None = None
