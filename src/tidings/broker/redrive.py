"""Dead letters of one group: listing them and redriving them back to that group only.

A redrive appends the dead letter's original body, key and headers to the origin topic under
its **original** message id and producer id, with the header ``tidings-redrive-group``
naming the group; every other group of the topic settles such a record without delivering
it (see ``tidings.broker.group.deadletter.redriven_headers``), so only the group it died in
sees it again, as a fresh delivery (its delivery count starts over). Which dead letters were
redriven is kept by the broker's own group ``tidings-redrive`` on the dead-letter topic: a
redriven dead letter is acknowledged there, in the same commit as the republish, so it is
listed and redriven once. Discarding (the purge) acknowledges them there without a
republish. A mixin of :class:`tidings.broker.engine.Broker`.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import headers as H
from ..errors import BadRequest, NotFound
from ..model import DeadLetter, GroupSpec, Outgoing, Record
from .group.deadletter import redriven_headers
from .host import MixinBase

REDRIVE_GROUP = "tidings-redrive"  # the broker's cursor of redriven dead letters
MAX_REDRIVE = 10_000  # dead letters per call at most
_READ_CHUNK = 256


def _as_dead_letter(record: Record) -> DeadLetter:
    hd = record.headers
    try:
        deliveries = int(hd.get(H.DLQ_DELIVERIES, "0"))
        partition = int(hd.get(H.DLQ_PARTITION, "0"))
        offset = int(hd.get(H.DLQ_OFFSET, "-1"))
    except ValueError:
        deliveries, partition, offset = 0, 0, -1
    return DeadLetter(
        id=hd.get(H.DLQ_ID) or record.id,
        msg_id=hd.get(H.DLQ_MSG_ID),
        key=record.key,
        headers={
            k: v for k, v in hd.items() if not k.startswith(H.DLQ_PREFIX) and k != H.REDRIVE_GROUP
        },
        body=record.body,
        reason=hd.get(H.DLQ_REASON, ""),
        deliveries=deliveries,
        error=hd.get(H.DLQ_ERROR),
        dead_lettered_at=record.timestamp,
        partition=partition,
        offset=offset,
    )


class RedriveMixin(MixinBase):
    def dead_letter_topic_of(self, topic: str, group: str) -> str:
        return self._group(topic, group).dead_letter_topic

    def _waiting(self, topic: str, group: str, limit: int) -> list[tuple[int, Record]]:
        """Up to ``limit`` (partition, dead-letter record) of ``group`` not yet redriven."""
        dlq = self.dead_letter_topic_of(topic, group)
        t = self._topics.get(dlq)
        if t is None:
            return []  # nothing was dead-lettered yet: the topic is created on demand
        # gone back already: redriven or discarded, or moved by 'tidings dlq replay'
        done = [t.groups[name] for name in (REDRIVE_GROUP, H.REPLAY_GROUP) if name in t.groups]
        out: list[tuple[int, Record]] = []
        for p, part in enumerate(t.parts):  # the oldest ``limit`` of each partition, then
            cursors = [g.cursors[p] for g in done]  # the oldest ``limit`` of them all
            offset = max([part.first, *(c.floor for c in cursors)])
            found = 0
            while offset < part.next and found < limit:
                records = self.store.read(dlq, p, offset, _READ_CHUNK)
                if not records:
                    break
                for record in records:
                    if t.is_deleted(p, record.offset):
                        continue  # an operator deleted this dead letter
                    if any(c.is_acked(record.offset) for c in cursors):
                        continue
                    hd = record.headers
                    if hd.get(H.DLQ_TOPIC) == topic and hd.get(H.DLQ_GROUP) == group:
                        out.append((p, record))
                        found += 1
                        if found >= limit:
                            break
                offset = records[-1].offset + 1
        out.sort(key=lambda pr: pr[1].timestamp)
        return out[:limit]

    def dead_letters(self, topic: str, group: str, limit: int = 100) -> list[DeadLetter]:
        """The dead letters of ``group`` on ``topic`` that were not redriven, oldest first."""
        if limit < 1:
            raise BadRequest("limit must be >= 1")
        return [_as_dead_letter(r) for _, r in self._waiting(topic, group, limit)]

    def _select(
        self, topic: str, group: str, ids: Sequence[str] | None, limit: int | None
    ) -> list[tuple[int, Record]]:
        """The waiting dead letters a redrive or discard acts on (all, the ``ids`` given, or
        the oldest ``limit``); unknown ids raise NotFound."""
        cap = MAX_REDRIVE if limit is None else limit
        if cap < 1:
            raise BadRequest("limit must be >= 1")
        if ids is not None and not ids:
            raise BadRequest("ids is empty: give the ids to act on, or none for every one")
        scan = MAX_REDRIVE if ids else cap
        waiting = self._waiting(topic, group, scan)
        if ids:
            scanned = len(waiting)
            wanted = set(ids)
            waiting = [(p, r) for p, r in waiting if (r.headers.get(H.DLQ_ID) or r.id) in wanted]
            found = {r.headers.get(H.DLQ_ID) or r.id for _, r in waiting}
            missing = sorted(wanted - found)
            if missing:
                capped = (
                    f"; only the oldest {MAX_REDRIVE} are searched: redrive those first"
                    if scanned >= MAX_REDRIVE
                    else ""
                )
                raise NotFound(
                    f"no dead letter with id {', '.join(missing)} waits for group {group!r} of "
                    f"topic {topic!r} (already redriven or discarded, or not a dead letter of "
                    f"this group): list them with dead_letters({topic!r}, {group!r}){capped}"
                )
            waiting = waiting[:cap]
        return waiting

    def redrive(
        self,
        topic: str,
        group: str,
        ids: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[str]:
        """Send dead letters of ``group`` back to ``group`` only (all, the ``ids`` given, or
        the oldest ``limit``); return the message ids redriven. Unknown ids raise NotFound
        and nothing is redriven."""
        waiting = self._select(topic, group, ids, limit)
        if not waiting:
            return []
        letters = [_as_dead_letter(r) for _, r in waiting]
        out = [Outgoing(d.body, d.key, {**d.headers, H.REDRIVE_GROUP: group}) for d in letters]
        self.publish(topic, out, restore=[(d.id, d.msg_id) for d in letters])
        self._mark_redriven(self.dead_letter_topic_of(topic, group), waiting)
        return [d.id for d in letters]

    def discard_dead_letters(
        self,
        topic: str,
        group: str,
        ids: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[str]:
        """Drop dead letters of ``group`` for good (the purge): they are no longer listed nor
        redriven; the records stay in the dead-letter topic until its retention removes
        them. Return the message ids discarded; unknown ids raise NotFound."""
        waiting = self._select(topic, group, ids, limit)
        if waiting:
            self._mark_redriven(self.dead_letter_topic_of(topic, group), waiting)
        return [r.headers.get(H.DLQ_ID) or r.id for _, r in waiting]

    def _mark_redriven(self, dlq: str, done: list[tuple[int, Record]]) -> None:
        """Acknowledge redriven (or discarded) dead letters in the broker's group of ``dlq``."""
        spec = GroupSpec(topic=dlq, name=REDRIVE_GROUP, max_deliveries=0)
        t = self._topics[dlq]
        if REDRIVE_GROUP not in t.groups:
            self.create_group(spec)
        g = t.groups[REDRIVE_GROUP]
        for p, record in done:
            if g.cursors[p].ack(record.offset):
                g.journal_ack(p, record.offset)


__all__ = ["REDRIVE_GROUP", "RedriveMixin", "redriven_headers"]
