"""Message tracing: a bounded in-memory ring of what happened to each message of the traced
topics: published (when, by which connection, with its producer id, key, W3C trace id and
correlation id), each delivery (group, member, delivery count), acked, nacked, lease expired,
rejected, expired, dead-lettered (reason, dead-letter topic and the copy's id) and redriven.

The ring holds the last ``size`` events; older ones fall off (``dropped`` counts them). A
topic is traced when the ``covers`` predicate says so (the server passes the ``--trace``
patterns); ``sample`` keeps that fraction of messages, chosen by a hash of the message id so
that every event of a sampled message is kept. A topic that is not traced costs the engine one
attribute test per event (``TopicState.trace is None``); the engine calls in here only for
traced topics.

Queries follow a message by its broker id or producer ``msg_id``, a conversation by its
correlation id or trace id (the framework propagates both: a reply carries its request's
correlation id, a handler's publishes carry the trace id of what it handles), or a topic's
events after a sequence number (``--follow``).
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import msgspec

from .. import headers as H

if TYPE_CHECKING:
    from ..model import Record
    from .entries import Entry
    from .groups import GroupState
    from .members import Member

DEFAULT_SIZE = 100_000
MAX_RESULTS = 10_000  # events one query returns at most

EVENTS = (
    "published",
    "delivered",
    "redelivered",
    "acked",
    "nacked",
    "lease-expired",
    "rejected",
    "expired",
    "dead-lettered",
    "redriven",
)


class TraceEvent(msgspec.Struct, kw_only=True, gc=False, omit_defaults=True):
    """One thing that happened to one message (``event`` is one of ``EVENTS``)."""

    seq: int  # grows by one per event of this broker run
    time: float  # seconds since the epoch
    event: str
    topic: str
    partition: int
    offset: int
    id: str  # the broker's message id
    group: str | None = None
    member: str | None = None
    deliveries: int | None = None  # the delivery count (deliveries and what settles them)
    reason: str | None = None  # the consumer's error, the reject or dead-letter reason
    delay: float | None = None  # a nack's retry delay, seconds
    target: str | None = None  # dead-lettered: the dead-letter topic
    target_id: str | None = None  # dead-lettered: the copy's id there
    # published only: who sent it and what ties it to other messages
    origin: str | None = None  # the publishing connection (or "http", "broker")
    msg_id: str | None = None
    key: str | None = None
    type: str | None = None  # tidings-type header: event, command, request, reply, ...
    trace_id: str | None = None  # from the W3C traceparent header
    parent_id: str | None = None  # the traceparent's span id
    correlation_id: str | None = None
    reply_to: str | None = None
    source_id: str | None = None  # a dead-letter copy: the original message's id


def _everything(topic: str) -> bool:
    return True


def trace_ids(traceparent: str | None) -> tuple[str | None, str | None]:
    """(trace id, span id) of a W3C ``traceparent`` value, or (None, None)."""
    if not traceparent:
        return None, None
    parts = traceparent.strip().split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None, None
    return parts[1].lower(), parts[2].lower()


class Tracer:
    def __init__(
        self,
        size: int = DEFAULT_SIZE,
        *,
        sample: float = 1.0,
        covers: Callable[[str], bool] = _everything,
        patterns: tuple[str, ...] = (">",),
    ) -> None:
        if size < 1:
            raise ValueError("the trace ring needs room for at least one event")
        self.events: deque[TraceEvent] = deque(maxlen=size)
        self.size = size
        self.set_sample(sample)
        self.covers = covers
        self.patterns = patterns  # what ``covers`` was built from, for display
        self.seq = 0
        # The publisher of the next ``published`` batch, set by the server right before it
        # calls the engine's publish and taken (reset) by the first batch that reads it.
        self.origin: str | None = None

    def set_sample(self, sample: float) -> None:
        if not 0.0 < sample <= 1.0:
            raise ValueError("the trace sample must be in (0, 1]")
        self.sample = sample
        self._threshold = int(sample * 0x1_0000_0000)

    @property
    def dropped(self) -> int:
        """Events that fell off the ring."""
        return self.seq - len(self.events)

    def sampled(self, message_id: str) -> bool:
        if self._threshold > 0xFFFF_FFFF:
            return True
        return zlib.crc32(message_id.encode()) < self._threshold

    def _add(self, event: TraceEvent) -> None:
        self.events.append(event)

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    # -- events (the engine calls these for traced topics only) ------------------------------

    def published(
        self, topic: str, batches: dict[int, list[Record]], now: float, kind: str = "published"
    ) -> None:
        origin, self.origin = self.origin, None
        for p, records in batches.items():
            for r in records:
                if not self.sampled(r.id):
                    continue
                headers = r.headers
                trace_id = parent_id = correlation = reply_to = kind_of = source = None
                if headers:
                    trace_id, parent_id = trace_ids(headers.get(H.TRACEPARENT))
                    correlation = headers.get(H.CORRELATION_ID)
                    reply_to = headers.get(H.REPLY_TO)
                    kind_of = headers.get(H.MESSAGE_TYPE)
                    source = headers.get(H.DLQ_ID)
                self._add(
                    TraceEvent(
                        seq=self._next(),
                        time=now,
                        event=kind,
                        topic=topic,
                        partition=p,
                        offset=r.offset,
                        id=r.id,
                        origin=origin,
                        msg_id=r.msg_id,
                        key=r.key,
                        type=kind_of,
                        trace_id=trace_id,
                        parent_id=parent_id,
                        correlation_id=correlation,
                        reply_to=reply_to,
                        source_id=source,
                    )
                )

    def delivered(self, g: GroupState, member: Member, entry: Entry, record: Record, now: float):
        if not self.sampled(record.id):
            return
        self._add(
            TraceEvent(
                seq=self._next(),
                time=now,
                event="delivered" if entry.deliveries <= 1 else "redelivered",
                topic=g.topic.name,
                partition=entry.partition,
                offset=entry.offset,
                id=record.id,
                group=g.name,
                member=member.id,
                deliveries=entry.deliveries,
                reason="auto-ack" if g.spec.auto_ack else None,
            )
        )

    def settled(
        self,
        event: str,
        g: GroupState,
        entry: Entry,
        now: float,
        *,
        member: Member | None = None,
        reason: str | None = None,
        delay: float | None = None,
        target: str | None = None,
        target_id: str | None = None,
        message_id: str | None = None,
    ) -> None:
        """An event of a message the group holds as ``entry`` (acked, nacked, ...)."""
        if message_id is None:
            record = entry.record
            if record is not None:
                message_id = record.id
            else:  # a delayed entry keeps no record: find its id in the ring
                message_id = self._id_at(g.topic.name, entry.partition, entry.offset)
                if message_id is None:
                    return
        if not self.sampled(message_id):
            return
        who = member if member is not None else entry.member
        self._add(
            TraceEvent(
                seq=self._next(),
                time=now,
                event=event,
                topic=g.topic.name,
                partition=entry.partition,
                offset=entry.offset,
                id=message_id,
                group=g.name,
                member=who.id if who is not None else None,
                deliveries=entry.deliveries,
                reason=reason,
                delay=delay or None,
                target=target,
                target_id=target_id,
            )
        )

    def _id_at(self, topic: str, partition: int, offset: int) -> str | None:
        for e in reversed(self.events):
            if e.offset == offset and e.partition == partition and e.topic == topic:
                return e.id
        return None

    # -- queries -----------------------------------------------------------------------------

    def message(self, wanted: str) -> list[TraceEvent]:
        """Every event of the message whose broker id or producer ``msg_id`` is ``wanted``
        (several messages when one producer id was published to several topics)."""
        ids = {e.id for e in self.events if e.id == wanted or e.msg_id == wanted}
        return self._of(ids)

    def conversation(self, wanted: str) -> list[TraceEvent]:
        """Every event of the messages whose correlation id or W3C trace id is ``wanted``."""
        want = wanted.strip()
        lower = want.lower()
        ids = {
            e.id
            for e in self.events
            if e.event in ("published", "redriven")
            and (e.correlation_id == want or e.trace_id == lower)
        }
        return self._of(ids)

    def related(self, events: Iterable[TraceEvent]) -> list[TraceEvent]:
        """Events of the other messages of the conversations ``events`` belong to (same
        correlation id or trace id), and of their dead-letter copies."""
        events = list(events)
        own = {e.id for e in events}
        correlations = {e.correlation_id for e in events if e.correlation_id}
        traces = {e.trace_id for e in events if e.trace_id}
        copies = {e.target_id for e in events if e.target_id}
        ids = {
            e.id
            for e in self.events
            if e.event in ("published", "redriven")
            and e.id not in own
            and (
                e.correlation_id in correlations
                or e.trace_id in traces
                or e.id in copies
                or e.source_id in own
            )
        }
        return self._of(ids)

    def topic(self, topic: str | None, after: int = 0, limit: int = 1000) -> list[TraceEvent]:
        """The events (of ``topic``, or all) with a sequence number above ``after``."""
        out: list[TraceEvent] = []
        for e in reversed(self.events):
            if e.seq <= after:
                break
            if topic is None or e.topic == topic:
                out.append(e)
        out.reverse()
        return out[:limit]

    def _of(self, ids: set[str]) -> list[TraceEvent]:
        if not ids:
            return []
        return [e for e in self.events if e.id in ids][:MAX_RESULTS]
