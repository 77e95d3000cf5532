"""Handing messages to members and settling them: dispatch, leases, ack, nack, extend,
reject, expiry and dead-lettering. A mixin of :class:`tidings.broker.engine.Broker`, kept in
its own module because it is the hot path and the heart of the delivery guarantees."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import LeaseLost, NotFound, TidingsError
from ..headers import REDRIVE_GROUP, dead_letter_topic
from ..model import DEFAULT_MAX_MESSAGE_SIZE, Delivery, Record, TopicSpec
from .group.deadletter import dead_letter_message
from .group.entries import Entry, LeaseBatch
from .group.member import Member
from .group.queues import GroupState
from .redrive import redriven_headers

if TYPE_CHECKING:
    from ..clock import Clock
    from ..storage.base import Store
    from .timers import Timers
    from .tracing import Tracer

log = logging.getLogger("tidings.broker")


class DeliveryMixin:
    store: Store
    clock: Clock
    _timers: Timers
    _members: dict[str, Member]
    _pending_acks: dict[tuple[str, str, int], list[int]]
    _leased: list[Entry]
    _deferred: dict[int, GroupState]
    stuck_member_leases: int
    defer_dispatch: Callable[[Callable[[], None]], object] | None
    on_dirty: Callable[[], None] | None
    tracer: Tracer | None

    # -- dispatch ----------------------------------------------------------------------------

    def _dispatch_soon(self, g: GroupState) -> None:
        """Dispatch after a settle: at once, or (under a runtime) once per event-loop turn, so
        a burst of acks costs one dispatch instead of one each."""
        if self.defer_dispatch is None:
            self._dispatch(g)
            return
        if not self._deferred:
            self.defer_dispatch(self.dispatch_deferred)
        self._deferred[id(g)] = g

    def dispatch_deferred(self) -> None:
        groups, self._deferred = self._deferred, {}
        for g in groups.values():
            if g.topic.groups.get(g.name) is g:
                self._dispatch(g)

    def _dispatch(self, g: GroupState) -> None:
        if not g.members:
            return
        if g.ordered:
            self._dispatch_ordered(g)
        else:
            self._dispatch_shared(g)

    def _dispatch_shared(self, g: GroupState) -> None:
        now = self.clock.now()
        auto = g.spec.auto_ack
        out: dict[Member, list[Delivery]] = {}
        ready = g.ready

        def admit(entry: Entry) -> None:
            if not g.spec.key_ordered or g.claim_key(entry):
                self._activate(g, entry, now)

        while True:
            while not ready:
                if not g.load_shared(self.store, admit):
                    break
            if not ready:
                break
            member = g.next_member(auto)
            if member is None:
                break
            entry = ready.popleft()
            if entry.last_member is member and len(g.members) > 1:
                # its lease ran out on this member: another live member, if one can take it
                other = g.next_member(auto)
                if other is not None:
                    member = other
            if entry.expires_at is not None and entry.expires_at <= now:
                self._expire(g, entry)
                continue
            delivery = self._hand_out(g, member, entry, now)
            if delivery is not None:
                out.setdefault(member, []).append(delivery)
        self._flush_out(g, out, now)

    def _dispatch_ordered(self, g: GroupState) -> None:
        now = self.clock.now()
        auto = g.spec.auto_ack
        window = g.spec.in_flight_per_partition
        out: dict[Member, list[Delivery]] = {}
        for p, owner in enumerate(g.owners):
            if owner is None or (g.pinflight[p] and g.pholder[p] is not owner):
                continue  # unowned, or fenced: its previous owner still holds some of it
            q = g.pqueues[p]
            while g.pinflight[p] < window and owner.capacity(auto) > 0:
                if not q and not g.load_ordered(self.store, p, q.append):
                    break
                entry = q[0]
                if entry.not_before > now:  # (also a dead-letter retry: see _dead_letter)
                    self._wake_at(g, p, entry.not_before)
                    break
                if entry.expires_at is not None and entry.expires_at <= now:
                    q.popleft()
                    self._expire(g, entry)
                    continue
                q.popleft()
                delivery = self._hand_out(g, owner, entry, now)
                if delivery is not None:
                    out.setdefault(owner, []).append(delivery)
        self._flush_out(g, out, now)

    def _flush_out(self, g: GroupState, out: dict[Member, list[Delivery]], now: float) -> None:
        if self._leased:
            # One timer for every lease this dispatch handed out: they all end together.
            batch = LeaseBatch(self._leased)
            for entry in self._leased:
                entry.lease_batch = batch
            self._timers.at(now + g.spec.lease, self._leases_expired, g, batch)
            self._leased = []
        for member, deliveries in out.items():
            g.deliver_meter.mark(now, len(deliveries))
            member.deliver(deliveries)

    def _wake_at(self, g: GroupState, p: int, when: float) -> None:
        """One wake-up per partition head, not one per dispatch while the head waits."""
        if g.wake_at[p] != when:
            g.wake_at[p] = when
            self._timers.at(when, self._wake, g)

    def _wake(self, g: GroupState) -> None:
        if g.topic.groups.get(g.name) is g:
            self._dispatch(g)

    def _activate(self, g: GroupState, entry: Entry, now: float, front: bool = False) -> None:
        """A shared entry whose key (if any) is active: ready now, or delayed until due."""
        if entry.not_before > now:
            entry.record = None  # a delayed backlog keeps no bodies in memory
            g.delayed[entry.ref] = entry
            self._timers.at(entry.not_before, self._due, g, entry, entry.gen)
        else:
            g.enqueue_shared(entry, front)

    def _due(self, g: GroupState, entry: Entry, gen: int) -> None:
        if entry.gen != gen or g.delayed.get(entry.ref) is not entry:
            return
        del g.delayed[entry.ref]
        g.ready.appendleft(entry)
        self._wake(g)

    def _record_of(self, g: GroupState, entry: Entry) -> Record | None:
        if entry.offset < g.topic.parts[entry.partition].first:
            return None  # retention dropped it while it waited (even if loaded already)
        record = entry.record
        if record is None:
            found = self.store.read(g.topic.name, entry.partition, entry.offset, 1)
            if found and found[0].offset == entry.offset:
                record = found[0]
        return record

    def _hand_out(self, g: GroupState, member: Member, entry: Entry, now: float) -> Delivery | None:
        record = self._record_of(g, entry)
        headers = record.headers if record is not None else None
        if headers is not None and REDRIVE_GROUP in headers:  # a redrive: for one group only
            headers = redriven_headers(g.name, headers)
        if headers is None:  # removed by retention while it waited; or another group's redrive
            self._settle(g, entry)
            return None
        entry.deliveries += 1
        lease_until: float | None = None
        if g.spec.auto_ack:
            member.credit -= 1
            self._settle(g, entry)
        else:
            entry.record = record
            entry.member = member
            entry.gen += 1
            lease_until = entry.lease_until = now + g.spec.lease
            ref = entry.ref
            member.inflight[ref] = entry
            member.inflight_bytes += len(record.body)
            g.inflight[ref] = entry
            if g.ordered:
                g.pinflight[entry.partition] += 1
                g.pholder[entry.partition] = member
            self._leased.append(entry)
        delivery = Delivery(
            g.topic.name,
            g.name,
            entry.partition,
            record.offset,
            record.id,
            record.key,
            headers,
            record.body,
            record.timestamp,
            entry.deliveries,
            record.msg_id,
            lease_until,
        )
        if g.topic.trace is not None:
            g.topic.trace.delivered(g, member, entry, record, now)
        return delivery

    # -- settling ----------------------------------------------------------------------------

    def _held(
        self, member_id: str, partition: int, offset: int, settling: bool = True
    ) -> tuple[GroupState, Entry]:
        member = self._members.get(member_id)
        if member is None:
            raise NotFound(f"unknown member {member_id!r}: it left or timed out; subscribe again")
        lost = member.lost
        if settling:
            member.settled()  # even a late settle (LeaseLost) shows the member is alive
        entry = member.inflight.get((partition, offset))
        if entry is None:
            if lost and settling:
                self._dispatch_soon(member.group)  # the credit it got back
            raise LeaseLost(
                f"member does not hold the lease of {member.group.topic.name}/{partition}@{offset}"
                ": the lease expired (redelivered) or it was already settled"
            )
        return member.group, entry

    def _release(self, g: GroupState, entry: Entry) -> None:
        """Take an in-flight entry back from its member without settling it."""
        ref = entry.ref
        member = entry.member
        if member is not None:
            if member.inflight.pop(ref, None) is not None and entry.record is not None:
                member.inflight_bytes -= len(entry.record.body)
            entry.member = None
        if g.inflight.pop(ref, None) is not None and g.ordered:
            g.pinflight[entry.partition] -= 1
        entry.gen += 1
        if entry.lease_batch is not None:
            entry.lease_batch.leave(entry)

    def _settle(self, g: GroupState, entry: Entry) -> None:
        """The group is done with ``entry``: acked, dead-lettered or expired."""
        self._release(g, entry)
        cursor = g.cursors[entry.partition]
        if cursor.ack(entry.offset):
            if not self._pending_acks and self.on_dirty is not None:
                self.on_dirty()  # acks need a commit too, even when no publish follows
            self._pending_acks.setdefault((g.topic.name, g.name, entry.partition), []).append(
                entry.offset
            )
        g.ack_meter.mark(self.clock.now())
        if g.spec.key_ordered:
            nxt = g.release_key(entry.key)
            if nxt is not None:
                self._activate(g, nxt, self.clock.now())

    def _requeue(self, g: GroupState, entry: Entry, delay: float = 0.0) -> None:
        now = self.clock.now()
        entry.not_before = now + delay if delay > 0 else 0.0
        if g.ordered:
            g.requeue_ordered(entry)
        else:
            self._activate(g, entry, now, front=True)

    def _failed(self, g: GroupState, entry: Entry, delay: float = 0.0) -> None:
        """A delivery failed (nack or lease expiry): retry, or dead-letter past the limit."""
        limit = g.spec.max_deliveries
        if limit and entry.deliveries >= limit:
            self._dead_letter(g, entry, "max-deliveries", entry.last_error)
        else:
            self._requeue(g, entry, delay)

    def _lease_expired(self, g: GroupState, entry: Entry, gen: int) -> None:
        """An extended lease's own timer."""
        if entry.gen == gen and g.inflight.get(entry.ref) is entry:
            self._lease_lost(g, entry)
            self._wake(g)

    def _leases_expired(self, g: GroupState, batch: LeaseBatch) -> None:
        expired = False
        for entry in list(batch.entries):
            if entry.lease_batch is not batch or g.inflight.get(entry.ref) is not entry:
                continue  # settled, extended or taken back since
            self._lease_lost(g, entry)
            expired = True
        if expired:
            self._wake(g)

    def _lease_lost(self, g: GroupState, entry: Entry) -> None:
        member = entry.member
        if g.topic.trace is not None:
            g.topic.trace.settled("lease-expired", g, entry, self.clock.now())
        if member is not None:
            # its credit stays used until it settles something; the first expiry since it
            # last settled starts the stuck clock (see MemberSessionsMixin._stuck_too_long)
            now = self.clock.now()
            if member.lease_expired(now) and self.stuck_member_leases:
                when = now + self.stuck_member_leases * g.spec.lease
                self._timers.at(when, self._stuck_too_long, member, now)  # type: ignore[attr-defined]
            entry.last_member = member
        self._release(g, entry)
        entry.last_error = entry.last_error or "lease expired"
        self._failed(g, entry)

    def _expire(self, g: GroupState, entry: Entry) -> None:
        if g.topic.trace is not None:  # a delayed entry keeps no record: read its id
            record = entry.record or self._record_of(g, entry)
            if record is not None:
                g.topic.trace.settled("expired", g, entry, self.clock.now(), message_id=record.id)
        if g.spec.dead_letter_expired:
            self._dead_letter(g, entry, "expired", "ttl elapsed before delivery")
        else:
            self._settle(g, entry)

    def _dead_letter(self, g: GroupState, entry: Entry, reason: str, error: str | None) -> None:
        record = self._record_of(g, entry)
        if record is not None:
            name = g.spec.dead_letter_topic or dead_letter_topic(g.topic.name, g.name)
            message = dead_letter_message(
                record,
                topic=g.topic.name,
                group=g.name,
                partition=entry.partition,
                reason=reason,
                deliveries=entry.deliveries,
                error=error,
            )
            try:
                if name not in self._topics:  # type: ignore[attr-defined]
                    # on demand; it must take whatever its origin topic took
                    size = max(g.topic.spec.max_message_size, DEFAULT_MAX_MESSAGE_SIZE)
                    self.create_topic(  # type: ignore[attr-defined]
                        TopicSpec(name=name, max_message_size=size), exist_ok=True
                    )
                if self.tracer is not None:
                    self.tracer.origin = "broker (dead letter)"
                (copy,) = self.publish(name, [message])  # type: ignore[attr-defined]
            except TidingsError as exc:
                # The dead-letter topic refused it (full, too small, ...): keep the message in
                # the group rather than lose it, and try again after a pause.
                log.error(
                    "cannot dead-letter %s/%d@%d to %r: %s; retrying in %.0f s",
                    g.topic.name,
                    entry.partition,
                    entry.offset,
                    name,
                    exc,
                    g.spec.lease,
                )
                self._requeue(g, entry, g.spec.lease)
                return
            if g.topic.trace is not None:
                g.topic.trace.settled(
                    "dead-lettered", g, entry, self.clock.now(), reason=reason,
                    target=name, target_id=copy.id, message_id=record.id,
                )  # fmt: skip
        g.dead_lettered += 1
        self._settle(g, entry)

    # -- public settle API -------------------------------------------------------------------

    def ack(self, member_id: str, partition: int, offset: int) -> None:
        g, entry = self._held(member_id, partition, offset)
        if g.topic.trace is not None:
            g.topic.trace.settled("acked", g, entry, self.clock.now())
        self._settle(g, entry)
        self._dispatch_soon(g)

    def ack_many(self, member_id: str, refs: list[tuple[int, int]]) -> list[Exception | None]:
        """Ack several deliveries, dispatching once; one result (None or the error) each."""
        results: list[Exception | None] = []
        group: GroupState | None = None
        for partition, offset in refs:
            try:
                group, entry = self._held(member_id, partition, offset)
                if group.topic.trace is not None:
                    group.topic.trace.settled("acked", group, entry, self.clock.now())
                self._settle(group, entry)
                results.append(None)
            except (LeaseLost, NotFound) as exc:
                results.append(exc)
        if group is not None:
            self._dispatch_soon(group)
        return results

    def nack(
        self,
        member_id: str,
        partition: int,
        offset: int,
        delay: float = 0.0,
        error: str | None = None,
    ) -> None:
        g, entry = self._held(member_id, partition, offset)
        if error:
            entry.last_error = error
        if g.topic.trace is not None:
            g.topic.trace.settled(
                "nacked", g, entry, self.clock.now(), reason=error, delay=max(delay, 0.0)
            )
        self._release(g, entry)
        self._failed(g, entry, max(delay, 0.0))
        self._dispatch_soon(g)

    def extend(self, member_id: str, partition: int, offset: int, seconds: float) -> None:
        # an extend is no sign of progress: a client extends what waits in its buffer
        g, entry = self._held(member_id, partition, offset, settling=False)
        entry.gen += 1
        if entry.lease_batch is not None:  # its own timer from now on
            entry.lease_batch.leave(entry)
        entry.lease_until = self.clock.now() + max(seconds, 0.0)
        self._timers.at(entry.lease_until, self._lease_expired, g, entry, entry.gen)

    def reject(self, member_id: str, partition: int, offset: int, reason: str = "rejected") -> None:
        g, entry = self._held(member_id, partition, offset)
        if g.topic.trace is not None:
            g.topic.trace.settled("rejected", g, entry, self.clock.now(), reason=reason)
        self._release(g, entry)
        self._dead_letter(g, entry, "rejected", reason)
        self._dispatch_soon(g)
