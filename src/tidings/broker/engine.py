"""The broker engine: topics, publishing and group commit over one Store.

Synchronous and single-threaded by design: every call runs on the event loop's thread, never
blocks on fsync (that is :class:`tidings.broker.runtime.BrokerRuntime`'s job) and never awaits.
:class:`Broker` keeps the topics and the members by id, and hands each consumer group's work
to the group itself: a :class:`~tidings.broker.group.consumer_group.ConsumerGroup` owns its
delivery (members, credit, leases, timers, dead-lettering, fenced handover) and sees the broker
only through :class:`~tidings.broker.group.host.GroupHost`, which this class implements. Its
other concerns are mixins, one module each: ``group_catalogue`` (creating, redeclaring,
deleting and resetting groups), ``sessions`` (members by id: join, leave, heartbeats, credit,
and the settle calls, passed on to the member's group), ``redrive``, ``deletion`` (a
message by id, the purge), ``retention`` and ``stats``. This module holds
the lifecycle, the topic catalogue, the publish path and visibility. The contract for drivers
is written down in docs/design/engine-api.md.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence

from ..clock import Clock, SystemClock
from ..errors import (
    AlreadyExists,
    BadRequest,
    MessageTooLarge,
    NotFound,
    TopicFull,
)
from ..model import (
    DEFAULT_MAX_MESSAGE_SIZE,
    GroupSpec,
    Outgoing,
    Receipt,
    Record,
    TopicSpec,
)
from ..partitioning import partition_for
from ..storage.base import DELETIONS, RecoveryReport, Store
from ..storage.cursor import GroupCursor
from .dedup import PARTITION_BITS, PARTITION_MASK
from .deletion import DeletionMixin
from .group.consumer_group import ConsumerGroup
from .group.member import Member
from .group_catalogue import GroupCatalogueMixin
from .msgids import MessageIds
from .redeclaration import check_redeclaration, given_settings
from .redrive import RedriveMixin
from .retention import RetentionMixin
from .sessions import DEFAULT_STUCK_MEMBER_LEASES, MemberSessionsMixin
from .stats import StatsMixin
from .timers import Timers
from .topics import TopicState
from .tracing import Tracer

log = logging.getLogger("tidings.broker")

HOUSEKEEPING_INTERVAL = 1.0

CommitPoint = list[tuple[TopicState, int, int]]


class Broker(
    GroupCatalogueMixin,
    DeletionMixin,
    MemberSessionsMixin,
    RedriveMixin,
    RetentionMixin,
    StatsMixin,
):
    def __init__(
        self,
        store: Store,
        *,
        clock: Clock | None = None,
        confirm_after_sync: bool = False,
        deliver_after_sync: bool = True,
        stuck_member_leases: int = DEFAULT_STUCK_MEMBER_LEASES,
    ) -> None:
        if not isinstance(stuck_member_leases, int) or stuck_member_leases < 0:
            raise BadRequest(
                f"stuck_member_leases must be an integer >= 0 (0: never close), "
                f"got {stuck_member_leases!r}"
            )
        self.store = store
        # a member still stuck this many lease periods after its first expiry is closed
        self.stuck_member_leases = stuck_member_leases
        self.clock: Clock = clock or SystemClock()
        # confirm_after_sync: publishes are tracked for the next commit (the runtime confirms
        # them after its fsync); False: nothing waits (memory://, fsync=never).
        # deliver_after_sync (only with confirm_after_sync): published messages become
        # deliverable at make_visible(), after that fsync; False: at once, as soon as they are
        # written to the OS (they survive a broker crash, not a machine crash, until the fsync).
        self.confirm_after_sync = confirm_after_sync
        self.deliver_after_sync = deliver_after_sync
        self._topics: dict[str, TopicState] = {}
        self._members: dict[str, Member] = {}
        self._timers = Timers()
        self._member_seq = itertools.count(1)
        self._ids = MessageIds()
        self._dirty: dict[tuple[str, int], tuple[TopicState, int]] = {}
        self._acks_due: dict[int, ConsumerGroup] = {}  # groups with acks for the next commit
        self.on_dirty: Callable[[], None] | None = None  # the runtime's commit wake-up
        # Topics or groups changed since the last commit: even fsync=never must sync then,
        # or a kill would forget them.
        self.catalogue_changed = False
        # Set by a runtime to run settle-triggered dispatches once per loop turn
        # (e.g. loop.call_soon); None dispatches at once.
        self.defer_dispatch: Callable[[Callable[[], None]], object] | None = None
        self._deferred: dict[int, ConsumerGroup] = {}
        self.tracer: Tracer | None = None  # message tracing (set_tracer); None: off
        # called with each topic created from now on, after it exists (the MQTT front-end's
        # first-level wildcard subscriptions join it); an error there is logged, not raised
        self.topic_watchers: list[Callable[[TopicSpec], None]] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self) -> RecoveryReport:
        report = self.store.open()
        now = self.clock.now()
        for spec in self.store.topics():
            if spec.temporary:  # a reply topic of a connection that died with the broker
                self.store.drop_topic(spec.name)
                continue
            t = self._load_topic(spec)
            for p, part in enumerate(t.parts):
                if part.next > part.first:
                    last = self.store.read(spec.name, p, part.next - 1, 1)
                    if last:
                        self._ids.observe(last[-1].id)
            t.deleted = self._recovered_cursors(t, DELETIONS, report)
            for gspec in self.store.groups(spec.name):
                cursors = self._recovered_cursors(t, gspec.name, report)
                t.groups[gspec.name] = self._new_group(gspec, t, cursors)
            self._rebuild_dedup(t, now)
        for line in report.truncated:
            log.warning("recovery truncated a damaged tail: %s", line)
        for lost in report.lost:
            log.error("recovery lost damaged records: %s", lost.describe())
        self._timers.at(now + HOUSEKEEPING_INTERVAL, self._housekeeping)
        return report

    def _recovered_cursors(
        self, t: TopicState, group: str, report: RecoveryReport
    ) -> dict[int, GroupCursor]:
        """The group's cursors, without acks past the end of each recovered log. A machine
        crash can keep acks of records it took back (delivered while their fsync ran, or under
        fsync=never); new messages will reuse those offsets and must not count as acked."""
        cursors = self.store.load_cursors(t.name, group)
        for p, cursor in cursors.items():
            end = t.parts[p].next if p < len(t.parts) else None
            if end is not None and cursor.forget_from(end):
                self.store.forget_acks_from(t.name, group, p, end)
                report.truncated.append(
                    f"group {group!r} of topic {t.name!r}, partition {p}: acks past offset "
                    f"{end} forgotten (their records did not survive; new messages reuse them)"
                )
        return cursors

    def close(self) -> None:
        for member_id in list(self._members):
            self.leave(member_id)
        self.flush_acks()

    def _catalogue_changed(self) -> None:
        self.catalogue_changed = True
        if self.on_dirty is not None:
            self.on_dirty()

    def _load_topic(self, spec: TopicSpec, owner: object = None) -> TopicState:
        bounds = [self.store.bounds(spec.name, p) for p in range(spec.partitions)]
        t = TopicState(spec, bounds, owner)
        tracer = self.tracer
        if tracer is not None and tracer.covers(spec.name):
            t.trace = tracer
        self._topics[spec.name] = t
        return t

    def set_tracer(self, tracer: Tracer | None) -> None:
        """Trace the topics ``tracer`` covers from now on (None: trace nothing)."""
        self.tracer = tracer
        for t in self._topics.values():
            t.trace = tracer if tracer is not None and tracer.covers(t.name) else None

    def _rebuild_dedup(self, t: TopicState, now: float) -> None:
        window = t.spec.dedup_window
        if window <= 0:
            return
        for p, part in enumerate(t.parts):
            pos = max(self.store.offset_at(t.name, p, now - window), part.first)
            while pos < part.next:
                records = self.store.read(t.name, p, pos, 1024)
                if not records:
                    break
                t.dedup.remember_records(p, records)
                pos = records[-1].offset + 1

    # -- time --------------------------------------------------------------------------------

    def tick(self) -> float | None:
        """Run due timers; return seconds until the next one (None when none is set)."""
        now = self.clock.now()
        self._timers.run_due(now)
        deadline = self._timers.next_deadline()
        return None if deadline is None else max(deadline - now, 0.0)

    def _housekeeping(self) -> None:
        now = self.clock.now()
        for t in list(self._topics.values()):
            t.dedup.expire(now)
            self._enforce_retention(t, now)
        self._timers.at(now + HOUSEKEEPING_INTERVAL, self._housekeeping)

    # -- topics ------------------------------------------------------------------------------

    def _topic(self, name: str) -> TopicState:
        t = self._topics.get(name)
        if t is None:
            raise NotFound(f"topic {name!r} does not exist: create it first (create_topic)")
        return t

    def create_topic(
        self,
        spec: TopicSpec,
        *,
        exist_ok: bool = False,
        owner: object = None,
        given: Sequence[str] | None = None,
    ) -> TopicSpec:
        """Create the topic. With ``exist_ok`` an existing one is returned, unless the
        settings named in ``given`` (those the caller chose) differ: TopicConflict."""
        spec.validate()
        existing = self._topics.get(spec.name)
        if existing is not None:
            if exist_ok:
                asked = given_settings(spec, given or ())
                return check_redeclaration(existing.spec, asked)
            raise AlreadyExists(f"topic {spec.name!r} already exists")
        self.store.put_topic(spec)
        self._load_topic(spec, owner)
        self._catalogue_changed()
        for watcher in self.topic_watchers:
            try:
                watcher(spec)
            except Exception:  # a watcher's bug must not undo the topic
                log.exception("a topic watcher failed on the new topic %r", spec.name)
        return spec

    def delete_topic(self, name: str) -> None:
        t = self._topic(name)
        for g in list(t.groups.values()):
            self._drop_group_members(g)
        del self._topics[name]
        self._dirty = {k: v for k, v in self._dirty.items() if v[0] is not t}
        self._acks_due = {k: g for k, g in self._acks_due.items() if g.topic is not t}
        self.store.drop_topic(name)
        self._catalogue_changed()

    def drop_owner(self, owner: object) -> None:
        """Delete the temporary topics created for ``owner`` (a connection that closed)."""
        for t in [t for t in self._topics.values() if t.owner is owner]:
            self.delete_topic(t.name)

    def list_topics(self) -> list[TopicSpec]:
        return [t.spec for t in self._topics.values()]

    def topic_owner(self, name: str) -> object:
        return self._topic(name).owner

    # -- publishing --------------------------------------------------------------------------

    def publish(
        self,
        topic: str,
        messages: Sequence[Outgoing],
        *,
        restore: Sequence[tuple[str, str | None]] | None = None,
    ) -> list[Receipt]:
        """Append ``messages`` (all or none) and return their receipts. They are durable and
        deliverable after the next commit (see ``commit_point``/``make_visible``).
        ``restore`` (the redrive's, see ``redrive``): per message, the broker id and producer
        id it keeps instead of new ones; those messages carry no ``msg_id`` (no dedup)."""
        t = self._topic(topic)
        spec = t.spec
        now = self.clock.now()
        self._validate(spec, messages)
        self._check_capacity(t, messages)
        nparts = len(t.parts)
        parts = t.parts
        receipts: list[Receipt] = []
        batches: dict[int, list[Record]] = {}
        batch: list[Record] | None
        dedup = t.dedup if spec.dedup_window > 0 else None
        fresh: dict[str, int] = {}  # this batch's new producer ids -> packed position
        if dedup is not None:
            dedup.expire(now)
        # one clock read per batch; a redrive keeps the ids its messages had
        ids = self._ids.next_many(len(messages)) if restore is None else [i for i, _ in restore]
        n = 0  # records so far: duplicates take no id, so a batch's ids are consecutive
        for m in messages:
            msg_id = m.msg_id
            if msg_id is not None and dedup is not None:
                packed = fresh.get(msg_id)
                earlier = packed is not None
                if not earlier:
                    packed = dedup.get(msg_id)
                if packed is not None:
                    p, offset = packed & PARTITION_MASK, packed >> PARTITION_BITS
                    if earlier:  # earlier in this batch: not in the store yet
                        batch = batches[p]
                        first_id = batch[offset - batch[0].offset].id
                    else:
                        first_id = self._id_at(topic, p, offset)
                    receipts.append(Receipt(topic, p, offset, first_id, duplicate=True))
                    continue
                new_id: str | None = msg_id  # a producer id this batch sees first
            else:
                new_id = None
            key = m.key
            if nparts == 1:
                p = 0
            else:
                p = partition_for(key, nparts) if key is not None else t.rr.next(nparts)
            part = parts[p]
            offset = part.next
            part.next = offset + 1
            record_id = ids[n]
            n += 1
            record = Record(
                offset,
                now,
                record_id,
                key,
                m.headers,
                m.body,
                msg_id,
                now + m.delay if m.delay else None,
                now + m.ttl if m.ttl else None,
            )
            batch = batches.get(p)
            if batch is None:
                batch = batches[p] = []
            batch.append(record)
            receipts.append(Receipt(topic, p, offset, record_id))
            if new_id is not None:
                fresh[new_id] = (offset << PARTITION_BITS) | p
        if restore is not None:
            for receipt, (_, kept) in zip(receipts, restore, strict=True):
                batch = batches[receipt.partition]
                batch[receipt.offset - batch[0].offset].msg_id = kept
        for p, records in batches.items():
            try:
                self.store.append(topic, p, records)
            except Exception:
                # Nothing of this batch was confirmed: forget the offsets we handed out.
                self._rollback(t, batches)
                raise
        if dedup is not None:
            dedup.remember_batch(fresh, now)
        for p, records in batches.items():
            t.parts[p].remember(records)
        t.publish_meter.mark(now, len(receipts))
        if batches:
            if t.trace is not None:
                t.trace.published(
                    topic, batches, now, "published" if restore is None else "redriven"
                )
            self._published(t, batches)
        return receipts

    def _id_at(self, topic: str, partition: int, offset: int) -> str:
        """The broker message id stored at an offset ('' if retention removed it)."""
        part = self._topics[topic].parts[partition]
        if offset < part.first:
            return ""
        found = part.from_tail(offset, 1) or self.store.read(topic, partition, offset, 1)
        return found[0].id if found and found[0].offset == offset else ""

    def _validate(self, spec: TopicSpec, messages: Sequence[Outgoing]) -> None:
        limit = spec.max_message_size
        for m in messages:
            body = m.body
            if not isinstance(body, bytes):
                raise BadRequest(
                    f"message body must be bytes, got {type(body).__name__}: encode it first"
                )
            if len(body) > limit:
                raise MessageTooLarge(
                    f"message of {len(body)} bytes exceeds the max_message_size of topic "
                    f"{spec.name!r} ({limit} bytes): send less or raise the limit"
                )
            if m.key is not None and not isinstance(m.key, str):
                raise BadRequest(f"message key must be a str, got {type(m.key).__name__}")
            headers = m.headers
            if headers and not all(
                isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
            ):
                raise BadRequest("message headers must map str to str")
            if m.ttl is not None or m.delay is not None:
                for name, value in (("ttl", m.ttl), ("delay", m.delay)):
                    if value is not None and (not isinstance(value, int | float) or value < 0):
                        raise BadRequest(f"{name} must be a number of seconds >= 0, got {value!r}")

    def _check_capacity(self, t: TopicState, messages: Sequence[Outgoing]) -> None:
        spec = t.spec
        if spec.overflow != "reject" or spec.retention != "limits":
            return
        if spec.max_messages is not None and t.messages() + len(messages) > spec.max_messages:
            raise TopicFull(
                f"topic {t.name!r} holds its max_messages of {spec.max_messages}: "
                "consume or raise the limit, or use overflow='drop-oldest'"
            )
        if spec.max_bytes is not None:
            incoming = sum(len(m.body) for m in messages)
            used = sum(self.store.size(t.name, p) for p in range(len(t.parts)))
            if used + incoming > spec.max_bytes:
                raise TopicFull(
                    f"topic {t.name!r} holds its max_bytes of {spec.max_bytes}: "
                    "consume or raise the limit, or use overflow='drop-oldest'"
                )

    def _rollback(self, t: TopicState, batches: dict[int, list[Record]]) -> None:
        for p, records in batches.items():
            t.parts[p].forget_tail()
            stored_next = self.store.bounds(t.name, p)[1]
            t.parts[p].next = min(t.parts[p].next, max(stored_next, records[0].offset))

    def _published(self, t: TopicState, batches: dict[int, list[Record]]) -> None:
        if self.confirm_after_sync:
            for p in batches:
                self._dirty[(t.name, p)] = (t, p)
            if self.on_dirty is not None:
                self.on_dirty()
        if not self.confirm_after_sync or not self.deliver_after_sync:
            for p in batches:
                t.parts[p].visible = t.parts[p].next
            self._enforce_limits(t)
            for g in list(t.groups.values()):
                self.dispatch_soon(g)  # once per loop turn under a runtime, not per publish

    # -- group commit ------------------------------------------------------------------------

    def flush_acks(self) -> None:
        """Hand the groups' buffered acks to the store (the next sync makes them durable)."""
        due, self._acks_due = self._acks_due, {}
        for g in due.values():
            pending, g.pending_acks = g.pending_acks, {}
            if g.is_live() and self._topics.get(g.topic.name) is g.topic:
                for p, offsets in pending.items():
                    self.store.save_acks(g.topic.name, g.name, p, offsets)

    def has_pending(self) -> bool:
        return bool(self._dirty or self._acks_due)

    def commit_point(self) -> CommitPoint:
        """Snapshot what must become durable; call ``store.sync()`` then ``make_visible``."""
        self.flush_acks()
        point = [(t, p, t.parts[p].next) for t, p in self._dirty.values()]
        self._dirty.clear()
        return point

    def make_visible(self, point: CommitPoint) -> None:
        touched: dict[str, TopicState] = {}
        for t, p, nxt in point:
            if self._topics.get(t.name) is not t:
                continue  # deleted meanwhile
            part = t.parts[p]
            if nxt > part.visible:
                part.visible = nxt
                touched[t.name] = t
        for t in touched.values():
            self._enforce_limits(t)
            for g in list(t.groups.values()):
                g.dispatch()

    def sync(self) -> None:
        """Commit synchronously (tests and tools; the runtime does this off the loop)."""
        point = self.commit_point()
        self.store.sync()
        self.make_visible(point)

    # -- what the consumer groups ask of the broker (group.host.GroupHost) -------------------

    def _new_group(
        self, spec: GroupSpec, t: TopicState, cursors: dict[int, GroupCursor]
    ) -> ConsumerGroup:
        return ConsumerGroup(
            spec, t, cursors, self, reader=self.store, clock=self.clock, timers=self._timers
        )

    def dispatch_soon(self, g: ConsumerGroup) -> None:
        """Dispatch after a settle: at once, or (under a runtime) once per event-loop turn, so
        a burst of acks costs one dispatch instead of one each."""
        if self.defer_dispatch is None:
            g.dispatch()
            return
        if not self._deferred:
            self.defer_dispatch(self.dispatch_deferred)
        self._deferred[id(g)] = g

    def dispatch_deferred(self) -> None:
        groups, self._deferred = self._deferred, {}
        for g in groups.values():
            if g.is_live():
                g.dispatch()

    def acks_pending(self, g: ConsumerGroup) -> None:
        if not self._acks_due and self.on_dirty is not None:
            self.on_dirty()  # acks need a commit too, even when no publish follows
        self._acks_due[id(g)] = g

    def dead_letter(self, g: ConsumerGroup, topic: str, message: Outgoing) -> Receipt:
        if topic not in self._topics:
            # on demand; it must take whatever its origin topic took
            size = max(g.topic.spec.max_message_size, DEFAULT_MAX_MESSAGE_SIZE)
            self.create_topic(TopicSpec(name=topic, max_message_size=size), exist_ok=True)
        if self.tracer is not None:
            self.tracer.origin = "broker (dead letter)"
        (copy,) = self.publish(topic, [message])
        return copy

    def forget_member(self, member: Member) -> None:
        self._members.pop(member.id, None)
