"""The inventory service: puts refunded items back in stock."""

from __future__ import annotations

from collections import Counter

import tidings
from tidings.demo.models import REFUNDED, OrderRefunded

svc = tidings.Service("inventory")
stock: Counter[str] = Counter()  # a real service writes to its database (ctx.transaction)


@svc.on(REFUNDED, idempotent=True, concurrency=8)
async def restock(event: OrderRefunded) -> None:
    stock[event.sku] += event.quantity
