"""The refund services end to end on a real broker process."""

from __future__ import annotations

import asyncio
import contextlib

from tests.helpers.broker_process import BrokerProcess

from examples.refund import inventory, notification, order, payment
from tidings.demo.models import STATUS, RefundStatus, RefundStatusQuery


async def test_refunds_reach_every_service(tmp_path):
    with BrokerProcess(tmp_path / "data") as broker:
        for m in (order, inventory, payment, notification):
            m.svc.url = broker.url
        async with contextlib.AsyncExitStack() as stack:
            for m in (inventory, payment, notification):
                await stack.enter_async_context(m.svc.running())
            await order.main(50)
            await order.main(50)  # a retry of the whole batch: the broker drops every copy
            async with asyncio.timeout(30):
                while len(notification.sent) < 50 or len(payment.refunds) < 50:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            assert len(notification.sent) == 50
            assert sum(inventory.stock.values()) == 50
            answer = await order.svc.request(
                STATUS, RefundStatusQuery(order_id="o-7"), returns=RefundStatus, timeout=10
            )
            assert answer.state == "refunded"
            await order.svc.stop()
