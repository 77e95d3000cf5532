"""Publish retries: which failures are worth another try, and how long to wait between tries.

A publish that fails on a lost connection or a timeout may or may not have reached the broker.
Retrying it is safe because every retried message carries a producer message id (``msg_id``):
the broker drops a second copy within the topic's dedup window and answers with the first
copy's receipt (``duplicate=True``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..errors import Closed, ConnectionLost, RequestTimeout, Timeout, TransportUnavailable
from ..resilience.backoff import Backoff

T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """True for failures a retry can cure (the connection, not the request, was the problem)."""
    if isinstance(exc, Closed | RequestTimeout):
        return False
    return isinstance(exc, ConnectionLost | Timeout | TransportUnavailable)


async def with_retries(
    attempt: Callable[[], Awaitable[T]], *, retries: int, backoff: float, max_backoff: float = 2.0
) -> T:
    """Run ``attempt`` and retry transient failures up to ``retries`` times with jittered
    exponential backoff starting at ``backoff`` seconds; the last failure propagates."""
    delays = Backoff(backoff, 2.0, max_backoff, jitter=0.5)
    tries = 0
    while True:
        try:
            return await attempt()
        except Exception as exc:
            if tries >= retries or not is_transient(exc):
                raise
            tries += 1
            delay = delays.delay(tries)
            await asyncio.sleep(delay)
