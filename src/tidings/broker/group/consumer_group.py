"""A consumer group that owns its delivery: its members, their credit and leases, its timers,
dead-lettering and the fenced handover of ordered partitions.

:class:`ConsumerGroup` is the group's state (:class:`~tidings.broker.group.queues.GroupQueues`:
cursors, the loaded window of the backlog, its queues) plus every rule of delivering it, in one
place, the way a nats-server consumer owns its delivery over a stream. What it needs from
outside is the narrow :mod:`tidings.broker.group.host` interface: it reads the topic's log,
keeps its timers on the broker's heap, and asks its host to dispatch it soon, to commit its
acks, to append a dead letter and to forget a member it closed. The broker keeps the topics,
the members by id (the drivers' handle) and passes each call on to the member's group.

Credit comes back when a member settles, not when its leases expire: a member whose leases
expired with no settle since is *stuck* (reported in the group's stats) and, still stuck
``host.stuck_member_leases`` lease periods after its first expiry, closed (``MemberStuck``).
This is the hot path: keep it free of per-message allocations beyond the delivery itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ...errors import LeaseLost, MemberStuck, NotFound, TidingsError
from ...headers import REDRIVE_GROUP, dead_letter_topic
from ...model import Delivery, GroupSpec, Record
from .assignment import assign
from .deadletter import dead_letter_message, redriven_headers
from .entries import Entry, LeaseBatch
from .member import Member
from .queues import GroupQueues

if TYPE_CHECKING:
    from ...clock import Clock
    from ...storage.cursor import GroupCursor
    from ..timers import Timers
    from ..topics import TopicState
    from .host import GroupHost, LogReader

log = logging.getLogger("tidings.broker")


class ConsumerGroup(GroupQueues):
    def __init__(
        self,
        spec: GroupSpec,
        topic: TopicState,
        cursors: dict[int, GroupCursor],
        host: GroupHost,
        *,
        reader: LogReader,
        clock: Clock,
        timers: Timers,
    ) -> None:
        super().__init__(spec, topic, cursors)
        self.host = host
        self.reader = reader
        self.clock = clock
        self.timers = timers
        # acks not yet handed to the store, per partition (the host's next commit takes them)
        self.pending_acks: dict[int, list[int]] = {}
        self._leased: list[Entry] = []  # leases the running dispatch handed out

    @property
    def dead_letter_topic(self) -> str:
        return self.spec.dead_letter_topic or dead_letter_topic(self.topic.name, self.name)

    def is_live(self) -> bool:
        """Still the group its topic holds under its name (not deleted, reset or replaced)."""
        return self.topic.groups.get(self.name) is self

    # -- members -----------------------------------------------------------------------------

    def add(self, m: Member) -> None:
        """A member joined: rebalance an ordered group, then dispatch."""
        self.members.append(m)
        if self.ordered:
            self.rebalance()
        self.dispatch()

    def remove(self, m: Member, unhanded: Iterable[tuple[int, int]] | None = None) -> None:
        """A member left: its deliveries return now; ordered partitions move.

        ``unhanded``: the (partition, offset) its client says it never handed to the
        application (it names them when it closes). Those were no processing attempt: they
        return without counting the delivery. Every other delivery it held was handed out and
        not settled, an attempt that failed: retried, or dead-lettered after the last allowed
        one. None (a lost connection, a session timeout, a stuck member): the broker cannot
        tell a message being processed from one waiting in the client's buffer, so all
        return, counted, and none is dead-lettered by the leave."""
        if m in self.members:
            self.members.remove(m)
        returned = None if unhanded is None else set(unhanded)
        for entry in sorted(m.inflight.values(), key=lambda e: e.offset, reverse=True):
            self._release(entry)
            if returned is None:
                self._requeue(entry)
            elif entry.ref in returned:
                entry.deliveries -= 1  # it never reached the application
                self._requeue(entry)
            else:
                entry.last_error = entry.last_error or "its member left without settling it"
                self._failed(entry)
        if self.ordered:
            self.rebalance()
        self.dispatch()

    def add_credit(self, m: Member, n: int) -> None:
        if self.spec.auto_ack:
            m.credit = min(m.credit + max(n, 0), m.prefetch)
        else:
            # the client dropped ``n`` messages whose lease ran out in its buffer: the consumer
            # is taking messages again, so the credit those leases held comes back
            m.lost = max(m.lost - max(n, 0), 0)
            m.expiries = 0
            m.stuck_since = None
        self.dispatch()

    def pause(self, m: Member, paused: bool) -> None:
        if m.paused == paused:
            return
        m.paused = paused
        if not paused:
            self.dispatch()

    def rebalance(self) -> None:
        """Move partitions to balance the group. A moved partition is fenced, not revoked:
        its previous owner keeps the leases it holds (it may still be processing them) and
        settles them as usual; the new owner gets the partition only once none of them is in
        flight any more (settled, expired, or returned when that member left), so two members
        never process one partition at once."""
        members = sorted(self.members, key=lambda m: m.seq)
        owners = assign(len(self.owners), members, self.owners)
        for p, (old, new) in enumerate(zip(self.owners, owners, strict=True)):
            if old is new:
                continue
            if old is not None:
                old.partitions.discard(p)
            if new is not None:
                new.partitions.add(p)
        self.owners = owners

    def _stuck_too_long(self, m: Member, since: float) -> None:
        """``stuck_member_leases`` lease periods after a member's first expired lease: if it
        has settled nothing since (no ack, nack, reject, nor a client dropping an expired
        message from its buffer), it is stuck for good. Close it, so its messages (and, in an
        ordered group, its partitions) go to the other members. Counted in lease periods, not
        in messages: a whole prefetch that expires at once is one stall, and a member whose
        credit is spent on expired leases gets nothing more that could expire."""
        if m.group is not self:  # the group was reset since: the member moved with it
            m.group._stuck_too_long(m, since)
            return
        if m.stuck_since != since or m not in self.members:
            return
        periods = self.host.stuck_member_leases
        topic, group = self.topic.name, self.name
        error = MemberStuck(
            f"the broker closed this subscription to {topic}/{group}: its leases kept expiring "
            f"({m.expiries} in a row) with no ack, nack or reject for "
            f"{periods} lease periods (a consumer that stopped taking "
            "messages); its messages went to other members. Settle or extend within the "
            "lease, and subscribe again"
        )
        log.warning(
            "member %s of %s/%s is stuck (%d leases expired, nothing settled for %d lease "
            "periods): closing it",
            m.id,
            topic,
            group,
            m.expiries,
            periods,
        )
        self.host.forget_member(m)
        self.remove(m)
        if m.on_closed is not None:
            m.on_closed(error)

    def close(self) -> list[Member]:
        """The group is deleted: disarm its lease and delay timers (they would otherwise
        settle, and journal acks for, offsets of a group created again under its name) and
        drop its members and pending acks; return the members it had."""
        for entry in list(self.inflight.values()):
            self._release(entry)
        self.delayed.clear()
        self.pending_acks.clear()
        members = list(self.members)
        self.members.clear()
        return members

    def take_back_leases(self) -> list[Member]:
        """The group is reset: its members lose their leases; return them, for the new group
        to ``adopt``."""
        members = list(self.members)
        for m in members:
            for entry in list(m.inflight.values()):
                self._release(entry)
        self.pending_acks.clear()
        return members

    def adopt(self, old: ConsumerGroup) -> None:
        """Take over a reset group's members (and its counts); ``resume`` next."""
        members = self.members = list(old.members)
        self.dead_lettered = old.dead_lettered
        self.outcomes = old.outcomes
        for m in members:
            m.group = self
            m.partitions.clear()

    def resume(self) -> None:
        if self.ordered:
            self.rebalance()
        self.dispatch()

    # -- dispatch ----------------------------------------------------------------------------

    def dispatch(self) -> None:
        if not self.members:
            return
        if self.ordered:
            self._dispatch_ordered()
        else:
            self._dispatch_shared()

    def _dispatch_shared(self) -> None:
        now = self.clock.now()
        auto = self.spec.auto_ack
        out: dict[Member, list[Delivery]] = {}
        ready = self.ready
        key_ordered = self.spec.key_ordered

        def admit(entry: Entry) -> None:
            if not key_ordered or self.claim_key(entry):
                self._activate(entry, now)

        while True:
            while not ready:
                if not self.load_shared(self.reader, admit):
                    break
            if not ready:
                break
            member = self.next_member(auto)
            if member is None:
                break
            entry = ready.popleft()
            if entry.last_member is member and len(self.members) > 1:
                # its lease ran out on this member: another live member, if one can take it
                other = self.next_member(auto)
                if other is not None:
                    member = other
            if entry.expires_at is not None and entry.expires_at <= now:
                self._expire(entry)
                continue
            delivery = self._hand_out(member, entry, now)
            if delivery is not None:
                out.setdefault(member, []).append(delivery)
        self._flush_out(out, now)

    def _dispatch_ordered(self) -> None:
        now = self.clock.now()
        auto = self.spec.auto_ack
        window = self.spec.in_flight_per_partition
        out: dict[Member, list[Delivery]] = {}
        pinflight, pholder = self.pinflight, self.pholder
        for p, owner in enumerate(self.owners):
            if owner is None or (pinflight[p] and pholder[p] is not owner):
                continue  # unowned, or fenced: its previous owner still holds some of it
            q = self.pqueues[p]
            while pinflight[p] < window and owner.capacity(auto) > 0:
                if not q and not self.load_ordered(self.reader, p, q.append):
                    break
                entry = q[0]
                if entry.not_before > now:  # (also a dead-letter retry: see _dead_letter)
                    self._wake_at(p, entry.not_before)
                    break
                if entry.expires_at is not None and entry.expires_at <= now:
                    q.popleft()
                    self._expire(entry)
                    continue
                q.popleft()
                delivery = self._hand_out(owner, entry, now)
                if delivery is not None:
                    out.setdefault(owner, []).append(delivery)
        self._flush_out(out, now)

    def _flush_out(self, out: dict[Member, list[Delivery]], now: float) -> None:
        if self._leased:
            # One timer for every lease this dispatch handed out: they all end together.
            batch = LeaseBatch(self._leased)
            for entry in self._leased:
                entry.lease_batch = batch
            self.timers.at(now + self.spec.lease, self._leases_expired, batch)
            self._leased = []
        trace = self.topic.trace
        for member, deliveries in out.items():
            self.deliver_meter.mark(now, len(deliveries))
            if trace is not None:  # one ring row per member and dispatch
                trace.delivered_batch(self, member, deliveries, now)
            member.deliver(deliveries)

    def _wake_at(self, p: int, when: float) -> None:
        """One wake-up per partition head, not one per dispatch while the head waits."""
        if self.wake_at[p] != when:
            self.wake_at[p] = when
            self.timers.at(when, self._wake)

    def _wake(self) -> None:
        if self.is_live():
            self.dispatch()

    def _activate(self, entry: Entry, now: float, front: bool = False) -> None:
        """A shared entry whose key (if any) is active: ready now, or delayed until due."""
        if entry.not_before > now:
            entry.record = None  # a delayed backlog keeps no bodies in memory
            self.delayed[entry.ref] = entry
            self.timers.at(entry.not_before, self._due, entry, entry.gen)
        else:
            self.enqueue_shared(entry, front)

    def _due(self, entry: Entry, gen: int) -> None:
        if entry.gen != gen or self.delayed.get(entry.ref) is not entry:
            return
        del self.delayed[entry.ref]
        self.ready.appendleft(entry)
        self._wake()

    def _record_of(self, entry: Entry) -> Record | None:
        if entry.offset < self.topic.parts[entry.partition].first:
            return None  # retention dropped it while it waited (even if loaded already)
        record = entry.record
        if record is None:
            found = self.reader.read(self.topic.name, entry.partition, entry.offset, 1)
            if found and found[0].offset == entry.offset:
                record = found[0]
        return record

    def _hand_out(self, member: Member, entry: Entry, now: float) -> Delivery | None:
        record = self._record_of(entry)
        if record is None:  # removed by retention while it waited
            self._settle(entry)
            return None
        headers = record.headers
        if REDRIVE_GROUP in headers:  # a redrive: for one group only
            seen = redriven_headers(self.name, headers)
            if seen is None:  # another group's redrive
                self._settle(entry)
                return None
            headers = seen
        entry.deliveries += 1
        lease_until: float | None = None
        spec = self.spec
        if spec.auto_ack:
            member.credit -= 1
            self.outcomes.acked += 1
            self._settle(entry)
        else:
            entry.record = record
            entry.member = member
            entry.gen += 1
            lease_until = entry.lease_until = now + spec.lease
            ref = entry.ref
            member.inflight[ref] = entry
            member.inflight_bytes += len(record.body)
            self.inflight[ref] = entry
            if self.ordered:
                self.pinflight[entry.partition] += 1
                self.pholder[entry.partition] = member
            self._leased.append(entry)
        topic = self.topic
        delivery = Delivery(
            topic.name,
            self.name,
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
        return delivery

    # -- settling ----------------------------------------------------------------------------

    def _held(self, member: Member, partition: int, offset: int, settling: bool = True) -> Entry:
        lost = member.lost
        if settling:
            member.settled()  # even a late settle (LeaseLost) shows the member is alive
        entry = member.inflight.get((partition, offset))
        if entry is None:
            if lost and settling:
                self.host.dispatch_soon(self)  # the credit it got back
            raise LeaseLost(
                f"member does not hold the lease of {self.topic.name}/{partition}@{offset}"
                ": the lease expired (redelivered) or it was already settled"
            )
        return entry

    def _release(self, entry: Entry) -> None:
        """Take an in-flight entry back from its member without settling it."""
        ref = entry.ref
        member = entry.member
        if member is not None:
            if member.inflight.pop(ref, None) is not None and entry.record is not None:
                member.inflight_bytes -= len(entry.record.body)
            entry.member = None
        if self.inflight.pop(ref, None) is not None and self.ordered:
            self.pinflight[entry.partition] -= 1
        entry.gen += 1
        if entry.lease_batch is not None:
            entry.lease_batch.leave(entry)

    def journal_ack(self, partition: int, offset: int) -> None:
        """Buffer an ack for the store (the host's next commit takes it)."""
        pending = self.pending_acks
        if not pending:
            self.host.acks_pending(self)  # acks need a commit too, even when no publish follows
        line = pending.get(partition)
        if line is None:
            pending[partition] = [offset]
        else:
            line.append(offset)

    def _settle(self, entry: Entry) -> None:
        """The group is done with ``entry``: acked, dead-lettered or expired."""
        self._release(entry)
        if self.cursors[entry.partition].ack(entry.offset):
            self.journal_ack(entry.partition, entry.offset)
        self.ack_meter.mark(self.clock.now())
        if self.spec.key_ordered:
            nxt = self.release_key(entry.key)
            if nxt is not None:
                self._activate(nxt, self.clock.now())

    def drop(self, partition: int, offset: int) -> bool:
        """An operator deleted the message at ``offset``: settle it for this group wherever
        it is (leased: the lease ends, the member's ack answers LeaseLost; ready, delayed,
        waiting behind its key, or not loaded yet) without counting an ack. False if the
        group had settled it already."""
        cursor = self.cursors[partition]
        if cursor.is_acked(offset):
            return False
        self.outcomes.deleted += 1
        entry = self.inflight.get((partition, offset))
        active = entry is not None
        if entry is None:
            entry, active = self.take_out(partition, offset)
        if entry is not None:
            self._release(entry)
        if cursor.ack(offset):
            self.journal_ack(partition, offset)
        if active and entry is not None and self.spec.key_ordered:
            nxt = self.release_key(entry.key)
            if nxt is not None:
                self._activate(nxt, self.clock.now())
        self.host.dispatch_soon(self)
        return True

    def _requeue(self, entry: Entry, delay: float = 0.0) -> None:
        now = self.clock.now()
        entry.not_before = now + delay if delay > 0 else 0.0
        if self.ordered:
            self.requeue_ordered(entry)
        else:
            self._activate(entry, now, front=True)

    def _failed(self, entry: Entry, delay: float = 0.0) -> None:
        """A delivery failed (nack or lease expiry): retry, or dead-letter past the limit."""
        limit = self.spec.max_deliveries
        if limit and entry.deliveries >= limit:
            self._dead_letter(entry, "max-deliveries", entry.last_error)
        else:
            self._requeue(entry, delay)

    def _lease_expired(self, entry: Entry, gen: int) -> None:
        """An extended lease's own timer."""
        if entry.gen == gen and self.inflight.get(entry.ref) is entry:
            self._lease_lost(entry)
            self._wake()

    def _leases_expired(self, batch: LeaseBatch) -> None:
        expired = False
        for entry in list(batch.entries):
            if entry.lease_batch is not batch or self.inflight.get(entry.ref) is not entry:
                continue  # settled, extended or taken back since
            self._lease_lost(entry)
            expired = True
        if expired:
            self._wake()

    def _lease_lost(self, entry: Entry) -> None:
        self.outcomes.lease_expired += 1
        member = entry.member
        if self.topic.trace is not None:
            self.topic.trace.settled("lease-expired", self, entry, self.clock.now())
        if member is not None:
            # its credit stays used until it settles something; the first expiry since it
            # last settled starts the stuck clock (see _stuck_too_long)
            now = self.clock.now()
            periods = self.host.stuck_member_leases
            if member.lease_expired(now) and periods:
                self.timers.at(now + periods * self.spec.lease, self._stuck_too_long, member, now)
            entry.last_member = member
        self._release(entry)
        entry.last_error = entry.last_error or "lease expired"
        self._failed(entry)

    def _expire(self, entry: Entry) -> None:
        self.outcomes.expired += 1
        trace = self.topic.trace
        if trace is not None:  # a delayed entry keeps no record: read its id
            record = entry.record or self._record_of(entry)
            if record is not None:
                trace.settled("expired", self, entry, self.clock.now(), message_id=record.id)
        if self.spec.dead_letter_expired:
            self._dead_letter(entry, "expired", "ttl elapsed before delivery")
        else:
            self._settle(entry)

    def _dead_letter(self, entry: Entry, reason: str, error: str | None) -> None:
        record = self._record_of(entry)
        if record is not None:
            name = self.dead_letter_topic
            message = dead_letter_message(
                record,
                topic=self.topic.name,
                group=self.name,
                partition=entry.partition,
                reason=reason,
                deliveries=entry.deliveries,
                error=error,
            )
            try:
                copy = self.host.dead_letter(self, name, message)
            except TidingsError as exc:
                # The dead-letter topic refused it (full, too small, ...): keep the message in
                # the group rather than lose it, and try again after a pause.
                log.error(
                    "cannot dead-letter %s/%d@%d to %r: %s; retrying in %.0f s",
                    self.topic.name,
                    entry.partition,
                    entry.offset,
                    name,
                    exc,
                    self.spec.lease,
                )
                self._requeue(entry, self.spec.lease)
                return
            if self.topic.trace is not None:
                self.topic.trace.settled(
                    "dead-lettered", self, entry, self.clock.now(), reason=reason,
                    target=name, target_id=copy.id, message_id=record.id,
                )  # fmt: skip
        self.dead_lettered += 1
        self.outcomes.dead_lettered += 1
        self._settle(entry)

    # -- settling, as a member asks ----------------------------------------------------------

    def ack(self, member: Member, partition: int, offset: int) -> None:
        entry = self._held(member, partition, offset)
        if self.topic.trace is not None:
            self.topic.trace.acked(self, entry, self.clock.now())
        self.outcomes.acked += 1
        self._settle(entry)
        self.host.dispatch_soon(self)

    def ack_many(self, member: Member, refs: Sequence[tuple[int, int]]) -> list[Exception | None]:
        """Ack several deliveries, dispatching once; one result (None or the error) each."""
        results: list[Exception | None] = []
        settled = False
        trace = self.topic.trace
        traced: list[Entry] = []
        for partition, offset in refs:
            try:
                entry = self._held(member, partition, offset)
                if trace is not None and entry.record is not None:
                    traced.append(entry)
                self.outcomes.acked += 1
                self._settle(entry)
                settled = True
                results.append(None)
            except (LeaseLost, NotFound) as exc:
                results.append(exc)
        if traced and trace is not None:  # one ring row for the frame's acks
            trace.acked_batch(self, member, traced, self.clock.now())
        if settled:
            self.host.dispatch_soon(self)
        return results

    def nack(
        self,
        member: Member,
        partition: int,
        offset: int,
        delay: float = 0.0,
        error: str | None = None,
    ) -> None:
        entry = self._held(member, partition, offset)
        self.outcomes.nacked += 1
        if error:
            entry.last_error = error
        if self.topic.trace is not None:
            self.topic.trace.settled(
                "nacked", self, entry, self.clock.now(), reason=error, delay=max(delay, 0.0)
            )
        self._release(entry)
        self._failed(entry, max(delay, 0.0))
        self.host.dispatch_soon(self)

    def extend(self, member: Member, partition: int, offset: int, seconds: float) -> None:
        # an extend is no sign of progress: a client extends what waits in its buffer
        entry = self._held(member, partition, offset, settling=False)
        entry.gen += 1
        if entry.lease_batch is not None:  # its own timer from now on
            entry.lease_batch.leave(entry)
        entry.lease_until = self.clock.now() + max(seconds, 0.0)
        self.timers.at(entry.lease_until, self._lease_expired, entry, entry.gen)

    def reject(self, member: Member, partition: int, offset: int, reason: str = "rejected") -> None:
        entry = self._held(member, partition, offset)
        self.outcomes.rejected += 1
        if self.topic.trace is not None:
            self.topic.trace.settled("rejected", self, entry, self.clock.now(), reason=reason)
        self._release(entry)
        self._dead_letter(entry, "rejected", reason)
        self.host.dispatch_soon(self)
