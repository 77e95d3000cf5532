"""The notification service: tells the customer about the refund."""

from __future__ import annotations

import tidings
from tidings.demo.models import REFUNDED, OrderRefunded

svc = tidings.Service("notification")
sent: list[str] = []  # the e-mails we would have sent


@svc.on(REFUNDED, idempotent=True, concurrency=4)
async def notify(event: OrderRefunded) -> None:
    sent.append(f"to {event.customer}: order {event.order_id} refunded ({event.amount:.2f})")
