"""Stored responses of completed requests by ``Idempotency-Key``: a client that retries a POST
with the same key gets the first answer again instead of a second effect.

Kept per gateway instance for ``ttl`` seconds; across instances the key is also the
message id, so the broker's duplicate detection and idempotent handlers keep one effect.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class Stored:
    status: int
    body: bytes
    headers: dict[str, str]
    fingerprint: str  # method, path and body hash: one key, one request
    at: float


class ResponseStore:
    def __init__(self, ttl: float = 24 * 3600.0, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._done: OrderedDict[str, Stored] = OrderedDict()
        self._pending: dict[str, asyncio.Future[Stored | None]] = {}

    def get(self, key: str) -> Stored | None:
        entry = self._done.get(key)
        if entry is not None and time.monotonic() - entry.at > self.ttl:
            del self._done[key]
            return None
        return entry

    def pending(self, key: str) -> asyncio.Future[Stored | None] | None:
        return self._pending.get(key)

    def begin(self, key: str) -> None:
        self._pending[key] = asyncio.get_running_loop().create_future()

    def finish(self, key: str, stored: Stored | None) -> None:
        """Record the outcome (None: not worth keeping, e.g. a 5xx the client may retry)."""
        if stored is not None:
            self._done[key] = stored
            while len(self._done) > self.max_entries:
                self._done.popitem(last=False)
        fut = self._pending.pop(key, None)
        if fut is not None and not fut.done():
            fut.set_result(stored)
