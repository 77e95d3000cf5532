"""Conformance: a request to a topic nothing serves fails at once with NoResponders (not a
NotFound about creating the topic, nor a timeout); a scatter there returns no replies."""

from __future__ import annotations

import time

import pytest

import tidings
from tidings.errors import NoResponders, NotFound


async def test_request_to_a_topic_nobody_serves(client: tidings.AsyncClient, topic: str) -> None:
    started = time.monotonic()
    with pytest.raises(NoResponders) as caught:
        await client.request(topic, b"anyone?", timeout=30)
    assert time.monotonic() - started < 10, "must fail at once, not wait for the timeout"
    text = str(caught.value)
    assert f"no responder is subscribed to {topic!r}" in text
    assert "check the topic name" in text and "tidings services" in text
    assert "create it first" not in text
    assert isinstance(caught.value, NotFound), "still a NotFound for old except clauses"


async def test_scatter_to_a_topic_nobody_serves_returns_no_replies(
    client: tidings.AsyncClient, topic: str
) -> None:
    assert await client.scatter(topic, b"anyone?", timeout=1) == []
