"""Clean-up of the discovery groups that instances killed without a goodbye leave behind.

On the built-in broker each instance reads ``_srv`` in a group of its own (``_srv.<id>``)
and each registry read uses a short-lived ``_reader.*`` group; a SIGKILLed process cannot
delete its group. Every starting instance collects them: a group with no member whose
instance is not live in the registry (or a reader group with no member) is deleted.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from ...errors import TidingsError
from .subjects import EXTERNAL_TOPIC, HEARTBEAT_TOPIC, SRV_TOPIC
from .view import Registry

if TYPE_CHECKING:
    from ..asyncclient import AsyncClient

log = logging.getLogger("tidings.discovery")


async def _idle_groups(client: AsyncClient, topic: str, prefix: str) -> list[str]:
    try:
        info = await client.topic_info(topic)
    except TidingsError:
        return []
    return [g.name for g in info.groups if g.name.startswith(prefix) and g.members == 0]


async def collect_orphans(client: AsyncClient, keep: str | None = None) -> list[str]:
    """Delete orphaned discovery groups; returns ``topic/group`` of each one deleted."""
    deleted: list[str] = []
    idle = [n for n in await _idle_groups(client, SRV_TOPIC, "_srv.") if n != keep]
    if idle:
        live = {i.id for i in await Registry(client).instances(ask=False)}
        for name in idle:
            if name.removeprefix("_srv.") in live:
                continue  # alive, between two connections
            with contextlib.suppress(TidingsError):
                await client.delete_group(SRV_TOPIC, name)
                deleted.append(f"{SRV_TOPIC}/{name}")
    for topic in (HEARTBEAT_TOPIC, EXTERNAL_TOPIC):
        for name in await _idle_groups(client, topic, "_reader."):
            with contextlib.suppress(TidingsError):
                await client.delete_group(topic, name)
                deleted.append(f"{topic}/{name}")
    if deleted:
        log.info("deleted %d orphaned discovery groups", len(deleted))
    return deleted
