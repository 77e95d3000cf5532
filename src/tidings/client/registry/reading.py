"""Reading a registry topic from a point in time to its current end (a short-lived,
auto-acknowledged group of its own, deleted afterwards)."""

from __future__ import annotations

import contextlib
import json
import secrets
from typing import TYPE_CHECKING, Any

from ...errors import NotFound, TidingsError
from ...transports.base import CAP_START_TIME

if TYPE_CHECKING:
    from ..asyncclient import AsyncClient

IDLE = 0.3  # seconds without a record before the reader stops waiting for the end


async def read_topic(
    client: AsyncClient, topic: str, since: float | None = None, limit: int = 100_000
) -> list[tuple[str | None, dict[str, Any]]]:
    """(key, decoded JSON body) of each record of ``topic`` published at or after ``since``
    (every record when None), oldest first; an empty list when the topic does not exist."""
    try:
        info = await client.topic_info(topic)
    except NotFound:
        return []
    ends = {p.partition: p.next_offset for p in info.partitions if p.next_offset > p.first_offset}
    if not ends:
        return []
    start: Any = "earliest"
    if since is not None and CAP_START_TIME in client.capabilities:
        start = since
    group = f"_reader.{secrets.token_hex(6)}"
    out: list[tuple[str | None, dict[str, Any]]] = []
    sub = await client.subscribe(topic, group, start=start, auto_ack=True, prefetch=1000)
    try:
        remaining = dict(ends)
        while remaining and len(out) < limit:
            batch = await sub.next_batch(1000, timeout=IDLE)
            if not batch:
                break
            for message in batch:
                end = remaining.get(message.partition)
                if end is not None and message.offset + 1 >= end:
                    remaining.pop(message.partition, None)
                if since is not None and message.timestamp < since:
                    continue
                with contextlib.suppress(ValueError):
                    doc = json.loads(message.body)
                    if isinstance(doc, dict):
                        out.append((message.key, doc))
    finally:
        with contextlib.suppress(TidingsError):
            await sub.close()
        with contextlib.suppress(TidingsError):
            await client.delete_group(topic, group)
    return out
