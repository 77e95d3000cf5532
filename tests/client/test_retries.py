"""Publish retries: transient failures are retried, others are not."""

from __future__ import annotations

import pytest

from tidings.client.retries import is_transient, with_retries
from tidings.errors import BadRequest, Closed, ConnectionLost, RequestTimeout, Timeout


def test_transient_classification():
    assert is_transient(ConnectionLost())
    assert is_transient(Timeout())
    assert not is_transient(Closed())
    assert not is_transient(RequestTimeout())
    assert not is_transient(BadRequest())


async def test_retries_transient_failures_then_succeeds():
    calls = []

    async def attempt():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionLost("dropped")
        return "ok"

    assert await with_retries(attempt, retries=3, backoff=0.001) == "ok"
    assert len(calls) == 3


async def test_gives_up_after_the_limit_and_never_retries_bad_requests():
    calls = []

    async def flaky():
        calls.append(1)
        raise ConnectionLost("dropped")

    with pytest.raises(ConnectionLost):
        await with_retries(flaky, retries=2, backoff=0.001)
    assert len(calls) == 3

    calls.clear()

    async def bad():
        calls.append(1)
        raise BadRequest("no")

    with pytest.raises(BadRequest):
        await with_retries(bad, retries=5, backoff=0.001)
    assert len(calls) == 1
