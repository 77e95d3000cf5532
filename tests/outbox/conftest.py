"""Fixtures of the outbox tests: a real PostgreSQL (session), a real broker process (module),
SQLite files in temp dirs, and :func:`drain`, which reads every message a topic holds."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest
from tests.helpers.broker_process import BrokerProcess
from tests.helpers.postgres import *  # noqa: F403 - the postgres_server and pg_url fixtures

from tidings import AsyncClient
from tidings.model import Message


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    with BrokerProcess(tmp_path_factory.mktemp("outbox-broker")) as b:
        yield b


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'app.db'}"


@pytest.fixture
def topic() -> str:
    return f"outbox.{secrets.token_hex(4)}"


async def drain(
    url: str, topic: str, expected: int, *, timeout: float = 60.0, settle: float = 0.5
) -> list[Message]:
    """Every message on ``topic`` from the start (a fresh group), waiting until ``expected``
    arrived and then ``settle`` seconds more, so extra copies would show."""
    async with AsyncClient(url) as client:
        await client.create_topic(topic, exist_ok=True)
        sub = await client.subscribe(
            topic, f"drain-{secrets.token_hex(3)}", auto_ack=True, prefetch=1000
        )
        got: list[Message] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(got) < expected and loop.time() < deadline:
            got += await sub.next_batch(1000, timeout=min(1.0, deadline - loop.time()))
        extra_until = loop.time() + settle
        while loop.time() < extra_until:
            got += await sub.next_batch(1000, timeout=max(0.01, extra_until - loop.time()))
        await sub.close()
        return got


from tests.helpers.nats_server import nats_server, nats_url  # noqa: E402, F401
