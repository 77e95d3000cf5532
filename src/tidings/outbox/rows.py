"""Outbox rows on their way to the broker: decoding stored columns and publishing a batch.

A batch is a list of rows in write order. :func:`publish_rows` groups them by topic keeping
their order within each topic (per-key order is a per-topic property), publishes each topic's
rows with one ``publish_many`` carrying the rows' msg_ids, and returns only once the broker
confirmed all of them. A topic that does not exist yet is created, as ``Service.publish`` does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from ..client import AsyncClient
from ..errors import NotFound
from ..model import Outgoing, Receipt


@dataclass(slots=True)
class Row:
    """One outbox row; ``position`` is its id (polling) or its commit LSN (tailing)."""

    id: int
    msg_id: str
    topic: str
    key: str | None
    headers: dict[str, str]
    body: bytes
    delay: float | None
    created_at: float

    def outgoing(self, now: float) -> Outgoing:
        delay = None
        if self.delay:
            remaining = self.created_at + self.delay - now
            delay = remaining if remaining > 0 else None
        return Outgoing(self.body, self.key, self.headers, self.msg_id, None, delay)


_headers = msgspec.json.Decoder(dict[str, str])


def decode_headers(text: str | bytes) -> dict[str, str]:
    return _headers.decode(text) if text else {}


async def _publish_topic(
    client: AsyncClient, topic: str, messages: list[Outgoing]
) -> list[Receipt]:
    try:
        return await client.publish_many(topic, messages)
    except NotFound:  # the first messages on a topic: create it, then publish
        await client.create_topic(topic, exist_ok=True)
        return await client.publish_many(topic, messages)


async def publish_rows(client: AsyncClient, rows: Sequence[Row], chunk: int = 1000) -> int:
    """Publish ``rows`` (per topic, in order) and wait for the broker's confirms; returns how
    many were duplicates the broker's dedup absorbed."""
    now = time.time()
    by_topic: dict[str, list[Outgoing]] = {}
    for row in rows:
        by_topic.setdefault(row.topic, []).append(row.outgoing(now))

    async def one_topic(topic: str, messages: list[Outgoing]) -> int:
        duplicates = 0
        for start in range(0, len(messages), chunk):
            receipts = await _publish_topic(client, topic, messages[start : start + chunk])
            duplicates += sum(1 for r in receipts if r.duplicate)
        return duplicates

    if len(by_topic) == 1:
        ((topic, messages),) = by_topic.items()
        return await one_topic(topic, messages)
    counts = await asyncio.gather(*(one_topic(t, m) for t, m in by_topic.items()))
    return sum(counts)
