"""Message tracing: a bounded in-memory ring of what happened to each message of the traced
topics: published (when, by which connection, with its producer id, key, W3C trace id and
correlation id), each delivery (group, member, delivery count), acked, nacked, lease expired,
rejected, expired, dead-lettered (reason, dead-letter topic and the copy's id) and redriven.

The ring holds the last ``size`` events as plain tuples (building one costs about a tenth
of a :class:`~tidings.trace.TraceEvent`; queries, which are rare, make the Structs and read
the trace and correlation ids from the kept headers). Older events fall off (``dropped``
counts them). A
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

import bisect
import itertools
import operator
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeAlias

from .. import headers as H
from ..trace import TraceEvent

if TYPE_CHECKING:
    from ..model import Delivery, Record
    from .group.consumer_group import ConsumerGroup
    from .group.entries import Entry
    from .group.member import Member

DEFAULT_SIZE = 100_000
MAX_RESULTS = 10_000
MAX_CONSUMERS = 10_000  # members whose connection is remembered  # events one query returns at most


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


# A flat event: (seq, time, event, topic, partition, offset, id, group, member, deliveries,
# x1, x2, x3, x4, 1) where the x are, for published/redriven: origin, msg_id, key, headers;
# for the others: reason, delay, target, target_id. The last item of every row is how many
# events it holds (1 here), so that dropping the oldest rows is a C loop. Rows of several
# shapes share the ring (see below), so their items are typed by the code that reads them.
Row: TypeAlias = tuple[Any, ...]
_SEQ, _EVENT, _TOPIC, _ID, _MSG_ID, _HEADERS = 0, 2, 3, 6, 11, 13
_PUBLISHED = frozenset({"published", "redriven"})

# The ring keeps one row per event, except for a published (or redriven) batch: one row per
# partition batch, its per-message fields as lists made by C loops, expanded into flat events
# only when read: (first seq, time, event, topic, partition, first offset or the offsets,
# ids, msg_ids, keys, headers, origin, count).
_BATCH_LEN = 12
# Deliveries one dispatch handed to one member, and acks one ACK frame settled, are one row
# each too: (first seq, time, "delivered" or "acked", topic, group, member, partitions,
# offsets, ids, delivery counts, reason, None, count); a delivered item whose count is above 1
# reads as "redelivered".
_GROUP_BATCH_LEN = 13
_FLAT_LEN = 15
_last = operator.itemgetter(-1)
_get_id = operator.attrgetter("id")
_get_msg_id = operator.attrgetter("msg_id")
_get_key = operator.attrgetter("key")
_get_headers = operator.attrgetter("headers")
_get_offset = operator.attrgetter("offset")
_get_partition = operator.attrgetter("partition")
_get_count = operator.attrgetter("delivery_count")
_get_deliveries = operator.attrgetter("deliveries")
_get_record_id = operator.attrgetter("record.id")


def row_events(row: Row) -> int:
    """How many events a ring row holds."""
    count: int = row[-1]
    return count


def row_member(row: Row) -> str | None:
    """The member id a ring row names (None for a published batch)."""
    n = len(row)
    if n == _BATCH_LEN:
        return None
    member: str | None = row[5] if n == _GROUP_BATCH_LEN else row[8]
    return member


def _expand(row: Row) -> list[Row]:
    """The flat events of a batch row (published, delivered or acked)."""
    if len(row) == _GROUP_BATCH_LEN:
        seq, at, kind, topic, group, member, parts, offs, ids, counts, reason, _, n = row
        redelivery = "redelivered" if kind == "delivered" else kind
        return [
            (seq + i, at, kind if counts[i] <= 1 else redelivery, topic, parts[i], offs[i],
             ids[i], group, member, counts[i], reason, None, None, None, 1)
            for i in range(n)
        ]  # fmt: skip
    seq, at, kind, topic, p, offsets, ids, msg_ids, keys, headers, origin, n = row
    if isinstance(offsets, int):
        offsets = range(offsets, offsets + n)
    return [
        (seq + i, at, kind, topic, p, offsets[i], ids[i], None, None, None, origin, msg_ids[i],
         keys[i], headers[i], 1)
        for i in range(n)
    ]  # fmt: skip


def _event(row: Row, consumers: dict[str, str]) -> TraceEvent:
    seq, at, kind, topic, p, offset, mid, group, member, count, x1, x2, x3, x4, _ = row
    if kind not in _PUBLISHED:
        return TraceEvent(
            seq=seq, time=at, event=kind, topic=topic, partition=p, offset=offset, id=mid,
            group=group, member=member, consumer=consumers.get(member) if member else None,
            deliveries=count, reason=x1, delay=x2 or None,
            target=x3, target_id=x4,
        )  # fmt: skip
    headers = x4 or {}
    trace_id, parent_id = trace_ids(headers.get(H.TRACEPARENT))
    group = headers.get(H.REDRIVE_GROUP) if kind == "redriven" else None
    return TraceEvent(
        seq=seq, time=at, event=kind, topic=topic, partition=p, offset=offset, id=mid,
        group=group, origin=x1, msg_id=x2, key=x3, type=headers.get(H.MESSAGE_TYPE),
        trace_id=trace_id, parent_id=parent_id, correlation_id=headers.get(H.CORRELATION_ID),
        reply_to=headers.get(H.REPLY_TO), source_id=headers.get(H.DLQ_ID),
    )  # fmt: skip


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
        self.rows: list[Row] = []
        self.size = size
        self.seq = 0  # the sequence number of the newest event
        self._gone = 0  # events dropped off the ring's rows (seq - _gone: the rows' events)
        # past this seq the hot path drops the oldest rows (size and a tenth: amortised)
        self._trim_at = self._high = size + max(1, size // 10)
        self.set_sample(sample)
        self.covers = covers
        self.patterns = patterns  # what ``covers`` was built from, for display
        self._append = self.rows.append
        # The publisher of the next ``published`` batch, set by the server right before it
        # calls the engine's publish and taken (reset) by the first batch that reads it.
        self.origin: str | None = None
        # member id -> the connection it consumes through (the server says, at subscribe)
        self.consumers: dict[str, str] = {}

    def restore(self, rows: Iterable[Row], consumers: dict[str, str] | None = None) -> None:
        """Put rows kept from an earlier run (``rows_after``'s, oldest first) back into an
        empty ring; numbering goes on after the newest."""
        if self.rows:
            raise ValueError("restore() needs an empty trace ring")
        for row in rows:
            row = tuple(row)
            self.rows.append(row)
            self.seq = row[_SEQ] + row[-1] - 1
        self._gone = self.seq - sum(map(_last, self.rows))
        self._trim()
        for member, who in (consumers or {}).items():
            self.joined(member, who)

    def rows_after(self, seq: int) -> list[Row]:
        """The ring's rows whose events are newer than ``seq``, oldest first: what a persister
        has not written yet when it wrote up to ``seq`` (rows are never changed once added)."""
        out: list[Row] = []
        for row in reversed(self.rows):
            if row[_SEQ] <= seq:
                break
            out.append(row)
        out.reverse()
        return out

    def _trim(self) -> None:
        """Drop whole rows, oldest first, while the ring keeps ``size`` events without them.
        The hot path calls this only past ``_high`` (``size`` and a tenth), so dropping is
        amortised, and it is C loops (the rows' counts summed, one slice deleted); readers
        skip the events beyond ``size`` (``_excess``)."""
        rows = self.rows
        excess = self.seq - self._gone - self.size
        if excess > 0:
            sums = list(itertools.accumulate(map(_last, itertools.islice(rows, excess))))
            drop = bisect.bisect_right(sums, excess)
            if drop:
                del rows[:drop]
                self._gone += sums[drop - 1]
        self._trim_at = self._gone + self._high

    @property
    def count(self) -> int:
        """Events the rows hold (the oldest ``_excess`` of them beyond ``size``)."""
        return self.seq - self._gone

    @property
    def _excess(self) -> int:
        return max(0, self.count - self.size)

    def _flat(self) -> Iterator[Row]:
        """The flat events of the ring, oldest first (the newest ``size``)."""
        skip = self._excess
        for row in self.rows:
            if len(row) != _FLAT_LEN:
                flat = _expand(row)
                if skip:
                    flat, skip = flat[skip:], max(0, skip - len(flat))
                yield from flat
            elif skip:
                skip -= 1
            else:
                yield row

    def _flat_reversed(self) -> Iterator[Row]:
        """The same, newest first."""
        left = self.count - self._excess
        for row in reversed(self.rows):
            if left <= 0:
                return
            if len(row) != _FLAT_LEN:
                flat = _expand(row)[::-1][:left]
                left -= len(flat)
                yield from flat
            else:
                left -= 1
                yield row

    def joined(self, member_id: str, who: str) -> None:
        """Name a member's connection in its events (the newest MAX_CONSUMERS are kept)."""
        consumers = self.consumers
        consumers[member_id] = who
        if len(consumers) > MAX_CONSUMERS:
            del consumers[next(iter(consumers))]

    def set_sample(self, sample: float) -> None:
        if not 0.0 < sample <= 1.0:
            raise ValueError("the trace sample must be in (0, 1]")
        self.sample = sample
        self._threshold = int(sample * 0x1_0000_0000)
        self._all = self._threshold > 0xFFFF_FFFF

    @property
    def events(self) -> list[TraceEvent]:
        """Every event the ring holds, oldest first."""
        return [_event(row, self.consumers) for row in self._flat()]

    def __len__(self) -> int:
        return self.count - self._excess

    @property
    def dropped(self) -> int:
        """Events that fell off the ring."""
        return self.seq - len(self)

    def sampled(self, message_id: str) -> bool:
        return self._all or zlib.crc32(message_id.encode()) < self._threshold

    # -- events (the engine calls these for traced topics only) ------------------------------
    # Nothing is formatted here: a published batch is one row whatever its size (its fields
    # gathered by C loops), a delivery or a settlement one flat tuple of strings, numbers and
    # None. An unsampled message is dropped before anything is built.

    def published(
        self, topic: str, batches: dict[int, list[Record]], now: float, kind: str = "published"
    ) -> None:
        origin, self.origin = self.origin, None
        seq = self.seq
        for p, records in batches.items():
            if not self._all:
                records = [r for r in records if self.sampled(r.id)]
                if not records:
                    continue
            n = len(records)
            first = records[0].offset
            offsets = (
                first if records[-1].offset - first == n - 1 else list(map(_get_offset, records))
            )
            self._append((seq + 1, now, kind, topic, p, offsets, list(map(_get_id, records)),
                          list(map(_get_msg_id, records)), list(map(_get_key, records)),
                          list(map(_get_headers, records)), origin, n))  # fmt: skip
            seq += n
        self.seq = seq
        if seq > self._trim_at:
            self._trim()

    def delivered_batch(
        self, g: ConsumerGroup, member: Member, deliveries: list[Delivery], now: float
    ) -> None:
        """The deliveries one dispatch handed to ``member``: one row, its fields gathered by
        C loops."""
        if not self._all:
            deliveries = [d for d in deliveries if self.sampled(d.id)]
            if not deliveries:
                return
        self._batch_row("delivered", g, member, deliveries, _get_id, _get_count, now,
                        "auto-ack" if g.spec.auto_ack else None)  # fmt: skip

    def acked_batch(
        self, g: ConsumerGroup, member: Member, entries: list[Entry], now: float
    ) -> None:
        """The entries one ACK frame of ``member`` settled (each holds its record): one row."""
        if not self._all:
            entries = [e for e in entries if self.sampled(_get_record_id(e))]
            if not entries:
                return
        self._batch_row("acked", g, member, entries, _get_record_id, _get_deliveries, now, None)

    def _batch_row(
        self,
        kind: str,
        g: ConsumerGroup,
        member: Member,
        items: list[Any],
        get_id: Callable[[Any], str],
        get_count: Callable[[Any], int],
        now: float,
        note: str | None,
    ) -> None:
        """One row for ``items`` (deliveries or entries), its columns gathered by C loops."""
        n = len(items)
        seq = self.seq
        self._append((seq + 1, now, kind, g.topic.name, g.name, member.id,
                      list(map(_get_partition, items)), list(map(_get_offset, items)),
                      list(map(get_id, items)), list(map(get_count, items)),
                      note, None, n))  # fmt: skip
        self.seq = seq = seq + n
        if seq > self._trim_at:
            self._trim()

    def acked(self, g: ConsumerGroup, entry: Entry, now: float) -> None:
        """``settled("acked", ...)`` for the hot path (no keywords to sort out)."""
        record = entry.record
        if record is not None and (self._all or self.sampled(record.id)):
            who = entry.member
            self.seq = seq = self.seq + 1
            self._append(
                (seq, now, "acked", g.topic.name, entry.partition, entry.offset,
                 record.id, g.name, who.id if who is not None else None, entry.deliveries,
                 None, None, None, None, 1)
            )  # fmt: skip
            if seq > self._trim_at:
                self._trim()

    def settled(
        self,
        event: str,
        g: ConsumerGroup,
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
            if record is None:  # the engine passes the id when the entry holds no record
                return
            message_id = record.id
        if not (self._all or self.sampled(message_id)):
            return
        who = member if member is not None else entry.member
        self.seq = seq = self.seq + 1
        self._append(
            (seq, now, event, g.topic.name, entry.partition, entry.offset, message_id,
             g.name, who.id if who is not None else None, entry.deliveries, reason, delay,
             target, target_id, 1)
        )  # fmt: skip
        if seq > self._trim_at:
            self._trim()

    # -- queries -----------------------------------------------------------------------------

    def message(self, wanted: str) -> list[TraceEvent]:
        """Every event of the message whose broker id or producer ``msg_id`` is ``wanted``
        (several messages when one producer id was published to several topics)."""
        ids = {
            row[_ID]
            for row in self._flat()
            if row[_ID] == wanted or (row[_MSG_ID] == wanted and row[_EVENT] in _PUBLISHED)
        }
        return self._of(ids)

    def _linked(self, keep: Callable[[Row, str | None, str | None], bool]) -> set[str]:
        """Ids of the published messages for which ``keep(row, correlation id, trace id)``."""
        ids: set[str] = set()
        for row in self._flat():
            if row[_EVENT] not in _PUBLISHED:
                continue
            headers = row[_HEADERS]
            if headers:
                correlation = headers.get(H.CORRELATION_ID)
                trace_id = trace_ids(headers.get(H.TRACEPARENT))[0]
            else:
                correlation = trace_id = None
            if keep(row, correlation, trace_id):
                ids.add(row[_ID])
        return ids

    def conversation(self, wanted: str) -> list[TraceEvent]:
        """Every event of the messages whose correlation id or W3C trace id is ``wanted``."""
        want = wanted.strip()
        lower = want.lower()
        return self._of(self._linked(lambda row, c, t: c == want or t == lower))

    def related(self, events: Iterable[TraceEvent]) -> list[TraceEvent]:
        """Events of the other messages of the conversations ``events`` belong to (same
        correlation id or trace id), and of their dead-letter copies."""
        events = list(events)
        own = {e.id for e in events}
        correlations = {e.correlation_id for e in events if e.correlation_id}
        traces = {e.trace_id for e in events if e.trace_id}
        copies = {e.target_id for e in events if e.target_id}

        def keep(row: Row, correlation: str | None, trace_id: str | None) -> bool:
            mid = row[_ID]
            if mid in own:
                return False
            if mid in copies or (correlation is not None and correlation in correlations):
                return True
            if trace_id is not None and trace_id in traces:
                return True
            headers = row[_HEADERS]
            return bool(headers) and headers.get(H.DLQ_ID) in own

        return self._of(self._linked(keep))

    def topic(
        self,
        topic: str | None,
        after: int = 0,
        limit: int = 1000,
        visible: Callable[[str], bool] | None = None,
    ) -> tuple[list[TraceEvent], int]:
        """The first ``limit`` events (of ``topic``, or of every topic ``visible`` admits)
        with a sequence number above ``after`` (``after < 0``: the newest ``limit``), and the
        sequence number to follow from."""
        out: list[Row] = []
        newest = after < 0
        for row in self._flat_reversed():
            if row[_SEQ] <= after or (newest and len(out) == limit):
                break
            name = row[_TOPIC]
            if (topic is None or name == topic) and (visible is None or visible(name)):
                out.append(row)
        out.reverse()
        if newest:
            return [_event(r, self.consumers) for r in out], self.seq
        if len(out) > limit:
            out = out[:limit]
            return [_event(r, self.consumers) for r in out], out[-1][_SEQ]
        return [_event(r, self.consumers) for r in out], max(self.seq, after)

    def _of(self, ids: set[str]) -> list[TraceEvent]:
        if not ids:
            return []
        found = [_event(row, self.consumers) for row in self._flat() if row[_ID] in ids]
        return found[:MAX_RESULTS]
