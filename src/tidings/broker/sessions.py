"""Members by id, as the drivers hold them: joining, leaving, heartbeats and session timeouts,
credit, and the rebalancing (with fenced handover) of ordered groups' partitions. A mixin of
:class:`tidings.broker.engine.Broker`."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import BadRequest, MemberStuck, NotFound, TidingsError
from ..model import Delivery, GroupSpec
from .group.assignment import assign
from .group.member import Member
from .group.queues import GroupState

if TYPE_CHECKING:
    import itertools

    from ..clock import Clock
    from .timers import Timers

log = logging.getLogger("tidings.broker")

# Lease periods a member may stay stuck (a lease of it expired and it settled nothing since)
# before the broker closes its subscription, as RabbitMQ closes a channel past its consumer
# timeout. Its client extends what it holds, so an expiry means it stopped taking messages.
DEFAULT_STUCK_MEMBER_LEASES = 3


class MemberSessionsMixin:
    clock: Clock
    _timers: Timers
    _members: dict[str, Member]
    _member_seq: itertools.count[int]
    stuck_member_leases: int

    # -- members -----------------------------------------------------------------------------

    def join(
        self,
        spec: GroupSpec,
        *,
        prefetch: int,
        deliver: Callable[[list[Delivery]], None],
        session_timeout: float | None = None,
        closed: Callable[[TidingsError], None] | None = None,
        prefetch_bytes: int = 0,
    ) -> str:
        """Add a member to the group (created if missing); returns the member id. ``closed``
        is called (after the member left) if the broker removes it, with the reason.
        ``prefetch_bytes`` (0: none) bounds the bodies it holds un-settled, as ``prefetch``
        bounds their number (acknowledged groups; auto-ack members are bounded by count)."""
        if not isinstance(prefetch, int) or prefetch < 1:
            raise BadRequest(f"prefetch must be an integer >= 1, got {prefetch!r}")
        if not isinstance(prefetch_bytes, int) or prefetch_bytes < 0:
            raise BadRequest(
                f"prefetch_bytes must be an integer >= 0 (0: no byte budget), "
                f"got {prefetch_bytes!r}"
            )
        self.create_group(spec, exist_ok=True)
        g = self._group(spec.topic, spec.name)
        now = self.clock.now()
        member_id = secrets.token_hex(8)
        m = Member(
            member_id,
            next(self._member_seq),
            g,
            prefetch,
            deliver,
            session_timeout,
            now,
            closed,
            prefetch_bytes,
        )
        g.members.append(m)
        self._members[member_id] = m
        if session_timeout:
            self._timers.at(now + session_timeout, self._check_session, m)
        if g.ordered:
            self._rebalance(g)
        self._dispatch(g)
        return member_id

    def leave(self, member_id: str) -> None:
        """Remove a member: shared deliveries return to the group now; ordered partitions move."""
        m = self._members.pop(member_id, None)
        if m is None:
            raise NotFound(f"unknown member {member_id!r}")
        g = m.group
        if m in g.members:
            g.members.remove(m)
        for entry in sorted(m.inflight.values(), key=lambda e: e.offset, reverse=True):
            self._release(g, entry)
            self._requeue(g, entry)
        if g.ordered:
            self._rebalance(g)
        self._dispatch(g)

    def heartbeat(self, member_id: str) -> None:
        m = self._members.get(member_id)
        if m is None:
            raise NotFound(f"unknown member {member_id!r}: it left or timed out")
        m.last_seen = self.clock.now()

    def add_credit(self, member_id: str, n: int) -> None:
        m = self._members.get(member_id)
        if m is None:
            raise NotFound(f"unknown member {member_id!r}")
        if m.group.spec.auto_ack:
            m.credit = min(m.credit + max(n, 0), m.prefetch)
        else:
            # the client dropped ``n`` messages whose lease ran out in its buffer: the consumer
            # is taking messages again, so the credit those leases held comes back
            m.lost = max(m.lost - max(n, 0), 0)
            m.expiries = 0
            m.stuck_since = None
        self._dispatch(m.group)

    def pause_member(self, member_id: str, paused: bool) -> None:
        """Stop (or resume) dispatching to a member whose consumer cannot take more now (its
        connection's write buffer is over its high-water mark); nothing else changes."""
        m = self._members.get(member_id)
        if m is None or m.paused == paused:
            return
        m.paused = paused
        if not paused:
            self._dispatch(m.group)

    def member_group(self, member_id: str) -> GroupSpec:
        m = self._members.get(member_id)
        if m is None:
            raise NotFound(f"unknown member {member_id!r}")
        return m.group.spec

    def _check_session(self, m: Member) -> None:
        if self._members.get(m.id) is not m or not m.session_timeout:
            return
        deadline = m.last_seen + m.session_timeout
        if self.clock.now() >= deadline:
            log.info("member %s of %s/%s timed out", m.id, m.group.topic.name, m.group.name)
            self.leave(m.id)
        else:
            self._timers.at(deadline, self._check_session, m)

    def _stuck_too_long(self, m: Member, since: float) -> None:
        """``stuck_member_leases`` lease periods after a member's first expired lease: if it
        has settled nothing since (no ack, nack, reject, nor a client dropping an expired
        message from its buffer), it is stuck for good. Close it, so its messages (and, in an
        ordered group, its partitions) go to the other members. Counted in lease periods, not
        in messages: a whole prefetch that expires at once is one stall, and a member whose
        credit is spent on expired leases gets nothing more that could expire."""
        if self._members.get(m.id) is not m or m.stuck_since != since:
            return
        topic, group = m.group.topic.name, m.group.name
        error = MemberStuck(
            f"the broker closed this subscription to {topic}/{group}: its leases kept expiring "
            f"({m.expiries} in a row) with no ack, nack or reject for "
            f"{self.stuck_member_leases} lease periods (a consumer that stopped taking "
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
            self.stuck_member_leases,
        )
        self.leave(m.id)
        if m.on_closed is not None:
            m.on_closed(error)

    def _rebalance(self, g: GroupState) -> None:
        """Move partitions to balance the group. A moved partition is fenced, not revoked:
        its previous owner keeps the leases it holds (it may still be processing them) and
        settles them as usual; the new owner gets the partition only once none of them is in
        flight any more (settled, expired, or returned when that member left), so two members
        never process one partition at once."""
        members = sorted(g.members, key=lambda m: m.seq)
        owners = assign(len(g.owners), members, g.owners)
        for p, (old, new) in enumerate(zip(g.owners, owners, strict=True)):
            if old is new:
                continue
            if old is not None:
                old.partitions.discard(p)
            if new is not None:
                new.partitions.add(p)
        g.owners = owners
