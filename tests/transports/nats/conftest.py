"""Fixtures for the nats:// transport tests: a real nats-server and connected transports."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from tests.helpers.nats_server import *  # noqa: F403 - the server fixtures

from tidings.transports.nats import NatsTransport


@pytest.fixture
def name() -> Callable[[str], str]:
    """Unique topic/group names, so tests share one server without interfering."""
    suffix = uuid.uuid4().hex[:8]
    return lambda base: f"{base}-{suffix}"


@pytest.fixture
async def connect(nats_url: str) -> AsyncIterator[Callable]:
    """``await connect()`` -> a connected NatsTransport (closed after the test)."""
    opened: list[NatsTransport] = []

    async def _connect(url: str | None = None) -> NatsTransport:
        t = NatsTransport(url or nats_url)
        await t.connect()
        opened.append(t)
        return t

    yield _connect
    for t in opened:
        await t.close()


@pytest.fixture
async def transport(connect) -> NatsTransport:
    return await connect()
