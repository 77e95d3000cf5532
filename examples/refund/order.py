"""The order service: publishes ``order.refunded`` when an order is refunded.

``python order.py N`` refunds N made-up orders.
"""

from __future__ import annotations

import asyncio
import sys

import tidings
from tidings.demo.models import REFUNDED, OrderRefunded

svc = tidings.Service("order")
svc.emits(REFUNDED, OrderRefunded, description="an order was refunded")


async def refund(order: OrderRefunded) -> tidings.Receipt:
    # The order id is the message id: if this publish is retried, the broker drops the copy.
    return await svc.publish(REFUNDED, order, key=order.order_id, msg_id=order.order_id)


async def main(count: int) -> None:
    orders = [
        OrderRefunded(order_id=f"o-{i}", customer=f"c-{i % 7}", sku="sku-1", quantity=1,
                      amount=9.5)
        for i in range(count)
    ]  # fmt: skip
    await asyncio.gather(*(refund(o) for o in orders))
    await svc.stop()
    print(f"refunded {count} orders")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10))
