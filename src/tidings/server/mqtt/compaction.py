"""Compaction of the MQTT front-end's keyed internal topics (``_mqtt.retained``,
``_mqtt.sessions``), whose last record per key is the state: without it they grow by a record
per change, and so does the read at start.

When a topic holds more than ``COMPACT_AT`` records and more than twice as many as the state
has keys, the state is appended again as a snapshot (one record per live key, all in one
synchronous append, so no change can fall between them) and, once that is committed, every
record before the snapshot is trimmed. A crash at any point leaves a log whose last records
per key are still the state: before the trim, the older records are merely superseded by the
snapshot's copies. The owner calls :meth:`Compactor.appending` around each append whose state
is applied to memory only after its commit, so that no snapshot is taken while one is in
flight (it would copy the older value after the newer record).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ...errors import TidingsError
from ...model import Outgoing

if TYPE_CHECKING:
    from ..app import BrokerServer

log = logging.getLogger("tidings.server.mqtt")

COMPACT_AT = 1000  # records in the topic before a compaction is considered
CHUNK = 500  # records per engine append of a snapshot


class Compactor:
    def __init__(self, server: BrokerServer, topic: str) -> None:
        self.server = server
        self.topic = topic
        self.records = 0  # in the topic since its first offset (as far as this knows)
        self.in_flight = 0  # appends whose state is not in memory yet
        self.running = False
        self.task: asyncio.Task[None] | None = None

    def loaded(self, records: int) -> None:
        self.records = records

    def appended(self, n: int = 1) -> None:
        self.records += n

    def due(self, live: int) -> bool:
        return (
            not self.running
            and not self.in_flight
            and self.records > COMPACT_AT
            and self.records > 2 * live
        )

    def maybe(self, live: int, snapshot: Callable[[], list[Outgoing]]) -> None:
        """Start a compaction in the background if it is due (``live``: keys in the state)."""
        if self.due(live):
            self.task = asyncio.get_running_loop().create_task(self.compact(snapshot))

    async def compact(self, snapshot: Callable[[], list[Outgoing]]) -> None:
        """Append ``snapshot()`` (built now) and trim what precedes it once it is durable."""
        if self.running or self.in_flight:
            return
        self.running = True
        runtime = self.server.runtime
        broker = runtime.broker
        try:
            messages = snapshot()
            start = broker.store.bounds(self.topic, 0)[1]  # an empty state: trim it all
            for i in range(0, len(messages), CHUNK):  # no await in between: one append
                receipts = broker.publish(self.topic, messages[i : i + CHUNK])
                if i == 0:
                    start = receipts[0].offset  # where the snapshot begins
            await runtime.commit()
            before = self.records
            broker.trim_topic(self.topic, start)
            first, end = broker.store.bounds(self.topic, 0)
            self.records = end - first
            log.info("mqtt: %s compacted, %d records to %d", self.topic, before, self.records)
        except TidingsError as exc:
            log.warning("mqtt: %s not compacted: %s", self.topic, exc)
        finally:
            self.running = False
