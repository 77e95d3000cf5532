"""What an operator removes by hand: one message by id, or every message of a topic (the
purge). A mixin of :class:`tidings.broker.engine.Broker`.

A topic is an append-only log, so neither rewrites it. Deleting a message settles it for
every group of the topic, as if each had acknowledged it, wherever it is: waiting, delayed,
or leased (the lease ends; the holder's ack answers LeaseLost). Its offset is also recorded
durably as deleted (the store's DELETIONS state of the topic, kept until the topic goes), so
a group created later, or reset to a position before it, starts with it settled, browsing
leaves it out and a dead letter deleted is never redriven: no one sees it again, though its
bytes stay on disk until retention removes their segment. The purge
drops the topic's stored messages (every offset that was durable when it ran) and moves every
group past them, leases included, as SQS's PurgeQueue does: a message held by a consumer is
gone too, and its ack answers LeaseLost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import NotFound
from ..storage.base import DELETIONS
from ..storage.cursor import GroupCursor
from .host import MixinBase
from .msgids import EPOCH_MS, SEQ_BITS

if TYPE_CHECKING:
    from .topics import TopicState

_READ_CHUNK = 256
_CLOCK_SLACK = 60.0  # seconds an id's time may run ahead of its record's timestamp


class DeletionMixin(MixinBase):
    def _find(self, t: TopicState, message_id: str) -> tuple[int, int]:
        """(partition, offset) of the retained record with broker id ``message_id``. The id
        holds its publish time, so the search starts there; a redriven record keeps an older
        id, so the rest of the partition is searched after."""
        try:
            published = ((int(message_id, 16) >> SEQ_BITS) + EPOCH_MS) / 1000
        except ValueError:
            published = 0.0
        for p, part in enumerate(t.parts):
            start = max(self.store.offset_at(t.name, p, published - _CLOCK_SLACK), part.first)
            for begin, end in ((start, part.next), (part.first, start)):
                offset = begin
                while offset < end:
                    records = self.store.read(t.name, p, offset, min(_READ_CHUNK, end - offset))
                    if not records:
                        break
                    for record in records:
                        if record.offset >= end:
                            break
                        if record.id == message_id:
                            return p, record.offset
                    offset = records[-1].offset + 1
        raise NotFound(
            f"no message with id {message_id!r} is stored in topic {t.name!r} (never "
            "published there, or removed by retention or a purge): browse the topic to find "
            "its id"
        )

    def delete_message(self, topic: str, message_id: str) -> tuple[int, int, list[str]]:
        """Settle the message ``message_id`` of ``topic`` for every group, so none delivers
        it again; return its partition, offset and the groups that had not settled it yet.
        Unknown ids raise NotFound."""
        t = self._topic(topic)
        p, offset = self._find(t, message_id)
        if t.is_deleted(p, offset):
            return p, offset, []  # deleted already: as SQS's DeleteMessage, no error
        self.store.save_acks(t.name, DELETIONS, p, [offset])
        t.deleted.setdefault(p, GroupCursor()).ack(offset)
        settled = sorted(name for name, g in list(t.groups.items()) if g.drop(p, offset))
        return p, offset, settled

    def is_deleted(self, topic: str, partition: int, offset: int) -> bool:
        """Whether an operator deleted the message at ``offset`` (browsing leaves it out)."""
        return self._topic(topic).is_deleted(partition, offset)

    def purge_topic(self, topic: str) -> int:
        """Drop every durable message of ``topic`` and move all its groups past them (their
        leases on them end); return how many messages were dropped."""
        t = self._topic(topic)
        dropped = 0
        for p, part in enumerate(t.parts):
            before = part.first
            self._trim(t, p, part.visible)
            dropped += part.first - before
            part.forget_tail()
        for name, g in list(t.groups.items()):
            g.take_back_leases()
            self._acks_due.pop(id(g), None)
            cursors = dict(enumerate(g.cursors))
            fresh = self._new_group(g.spec, t, cursors)
            fresh.adopt(g)
            t.groups[name] = fresh
            fresh.resume()
        return dropped

    def trim_topic(self, topic: str, before: int, partition: int = 0) -> None:
        """Drop the records of the partition below offset ``before`` (the store drops whole
        segments, so it may keep a few older ones); groups behind skip forward. For a topic
        its owner compacts (the MQTT front-end's ``_mqtt.*`` topics, after a snapshot)."""
        t = self._topic(topic)
        self._trim(t, partition, before)


__all__ = ["DeletionMixin"]
