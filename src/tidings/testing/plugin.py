"""pytest fixtures for tidings services: ``pytest_plugins = ["tidings.testing.plugin"]``.

    async def test_refund(tidings_kit):
        kit = await tidings_kit(payment_service, clock=True)
        await kit.publish("order.refunded", OrderRefunded(order_id="o-1"))
        await kit.handled("order.refunded")

The kit (and its broker) stop when the test ends. Needs pytest-asyncio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest_asyncio

from ..service import Service
from .kit import ServiceKit


@pytest_asyncio.fixture
async def tidings_kit() -> AsyncIterator[Callable[..., Awaitable[ServiceKit]]]:
    kits: list[ServiceKit] = []

    async def start(*services: Service, **options: Any) -> ServiceKit:
        kit = ServiceKit(*services, **options)
        await kit.__aenter__()
        kits.append(kit)
        return kit

    yield start
    for kit in reversed(kits):
        await kit.__aexit__(None, None, None)
