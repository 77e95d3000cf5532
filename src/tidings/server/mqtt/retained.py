"""Retained messages (MQTT 5.0 §3.3.1.3, 3.1.1 §3.3.1.3): the last retained PUBLISH of each
MQTT topic, kept durably and sent to new subscriptions with the RETAIN flag.

They live in the broker's store as the internal topic ``_mqtt.retained`` (one record per
retained PUBLISH, the MQTT topic as key; an empty payload is a record that clears the topic)
and in memory by tidings topic, rebuilt at start by reading that topic from its beginning:
the last record of a key wins. A retained PUBLISH is appended (and committed) after the
message itself, before the client's PUBACK/PUBREC. The internal topic is not reachable over
MQTT (``mapping.split_topic``). It is compacted (``compaction``): past 1,000 records and
twice the retained messages, they are appended again and the older records trimmed.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ...model import Delivery, Outgoing, Record, TopicSpec
from . import codec as m
from .compaction import Compactor
from .mapping import EXPIRY_HEADER, INTERNAL_PREFIX, Filter, mqtt_topic, split_topic, to_outgoing
from .subscription import may_subscribe

if TYPE_CHECKING:
    from ..app import BrokerServer
    from ..auth import User

RETAINED_TOPIC = INTERNAL_PREFIX + "retained"
READ_BATCH = 1000


class RetainedStore:
    def __init__(self, server: BrokerServer) -> None:
        self.server = server
        # tidings topic -> MQTT topic -> (the message as a delivery, expiry time or None)
        self.by_topic: dict[str, dict[str, tuple[Delivery, float | None]]] = {}
        self.compactor = Compactor(server, RETAINED_TOPIC)

    def load(self) -> int:
        """Create the internal topic if missing and read what it holds; returns the number of
        retained messages."""
        broker = self.server.runtime.broker
        broker.create_topic(TopicSpec(name=RETAINED_TOPIC, dedup_window=0), exist_ok=True)
        store = broker.store
        offset, end = store.bounds(RETAINED_TOPIC, 0)
        self.compactor.loaded(end - offset)
        while offset < end:
            records = store.read(RETAINED_TOPIC, 0, offset, READ_BATCH)
            if not records:
                break
            for record in records:
                self._remember(record)
            offset = records[-1].offset + 1
        return sum(len(t) for t in self.by_topic.values())

    def _remember(self, record: Record) -> None:
        delivery = Delivery(
            "", "", -1, -1, record.id, record.key, record.headers, record.body,
            record.timestamp, 1,
        )  # fmt: skip
        topic = mqtt_topic(delivery)
        first = delivery.topic = split_topic(topic)[0]
        if record.body:
            self.by_topic.setdefault(first, {})[topic] = (delivery, record.expires_at)
        else:
            self.by_topic.get(first, {}).pop(topic, None)

    async def put(self, packets: list[m.Publish], origin: str) -> None:
        """Store the retained PUBLISHes (in order; an empty payload clears its topic)."""
        messages = []
        for packet in packets:
            msg = to_outgoing(packet)
            messages.append(Outgoing(msg.body, packet.topic, msg.headers, None, msg.ttl))
        compactor = self.compactor
        compactor.in_flight += 1  # no snapshot until memory has these too
        try:
            receipts = await self.server.runtime.publish(RETAINED_TOPIC, messages, origin)
            compactor.appended(len(receipts))
            now = self.server.runtime.broker.clock.now()
            for msg, receipt in zip(messages, receipts, strict=True):
                self._remember(
                    Record(
                        receipt.offset, now, receipt.id, msg.key, msg.headers, msg.body, None,
                        None, now + msg.ttl if msg.ttl else None,
                    )
                )  # fmt: skip
        finally:
            compactor.in_flight -= 1
        compactor.maybe(sum(len(t) for t in self.by_topic.values()), self._snapshot)

    def _snapshot(self) -> list[Outgoing]:
        """The retained messages as records again (for ``compaction``): the expiry left, and
        a v5 expiry interval that counts from now (the snapshot's publish time)."""
        now = self.server.runtime.broker.clock.now()
        out = []
        for held in self.by_topic.values():
            for topic, (delivery, expires_at) in held.items():
                headers, ttl = delivery.headers, None
                if expires_at is not None:
                    ttl = expires_at - now
                    if ttl <= 0:
                        continue
                    if EXPIRY_HEADER in headers:
                        headers = {**headers, EXPIRY_HEADER: str(max(1, math.ceil(ttl)))}
                out.append(Outgoing(delivery.body, topic, headers, None, ttl))
        return out

    def matching(self, flt: Filter, user: User | None = None) -> list[Delivery]:
        """The retained messages a new subscription with ``flt`` gets, by MQTT topic; expired
        ones are dropped (5.0 §3.3.2.3.3). A first-level wildcard gets those of each topic
        it covers that ``user`` may subscribe to."""
        if flt.spans_topics:
            topics = [t for t in self.by_topic if flt.covers(t) and may_subscribe(user, t)]
        else:
            topics = [flt.topic]
        now = self.server.runtime.broker.clock.now()
        found = []
        for name in sorted(topics):
            held = self.by_topic.get(name)
            if not held:
                continue
            for topic, (delivery, expires_at) in sorted(held.items()):
                if expires_at is not None and expires_at <= now:
                    del held[topic]
                    continue
                if flt.matches(topic):
                    found.append(delivery)
        return found
