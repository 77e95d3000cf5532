"""Members by id, as the drivers hold them: joining, leaving, heartbeats and session timeouts,
and every call a driver makes for a member (credit, pause, ack, nack, extend, reject), passed
on to the member's :class:`~tidings.broker.group.consumer_group.ConsumerGroup`, which owns the
rules. A mixin of :class:`tidings.broker.engine.Broker`."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable

from ..errors import BadRequest, NotFound, TidingsError
from ..model import Delivery, GroupSpec
from .group.member import Member
from .host import MixinBase

log = logging.getLogger("tidings.broker")

# Lease periods a member may stay stuck (a lease of it expired and it settled nothing since)
# before the broker closes its subscription, as RabbitMQ closes a channel past its consumer
# timeout. Its client extends what it holds, so an expiry means it stopped taking messages.
DEFAULT_STUCK_MEMBER_LEASES = 3


class MemberSessionsMixin(MixinBase):
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
        self._members[member_id] = m
        if session_timeout:
            self._timers.at(now + session_timeout, self._check_session, m)
        g.add(m)
        return member_id

    def leave(self, member_id: str, unhanded: Iterable[tuple[int, int]] | None = None) -> None:
        """Remove a member: its deliveries return to the group now; ordered partitions move.
        ``unhanded``: the (partition, offset) its client never handed to the application,
        returned without counting the delivery; the rest it held count as failed attempts.
        None: the client named nothing (see ``ConsumerGroup.remove``)."""
        m = self._members.pop(member_id, None)
        if m is None:
            raise NotFound(f"unknown member {member_id!r}")
        m.group.remove(m, unhanded)

    def heartbeat(self, member_id: str) -> None:
        m = self._members.get(member_id)
        if m is None:
            raise NotFound(f"unknown member {member_id!r}: it left or timed out")
        m.last_seen = self.clock.now()

    def add_credit(self, member_id: str, n: int) -> None:
        m = self._members.get(member_id)
        if m is None:
            raise NotFound(f"unknown member {member_id!r}")
        m.group.add_credit(m, n)

    def pause_member(self, member_id: str, paused: bool) -> None:
        """Stop (or resume) dispatching to a member whose consumer cannot take more now (its
        connection's write buffer is over its high-water mark); nothing else changes."""
        m = self._members.get(member_id)
        if m is not None:
            m.group.pause(m, paused)

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

    # -- settling, by member id ----------------------------------------------------------

    def _held_by(self, member_id: str) -> Member:
        m = self._members.get(member_id)
        if m is None:
            raise NotFound(f"unknown member {member_id!r}: it left or timed out; subscribe again")
        return m

    def ack(self, member_id: str, partition: int, offset: int) -> None:
        m = self._held_by(member_id)
        m.group.ack(m, partition, offset)

    def ack_many(self, member_id: str, refs: list[tuple[int, int]]) -> list[Exception | None]:
        """Ack several deliveries, dispatching once; one result (None or the error) each."""
        m = self._members.get(member_id)
        if m is None:
            results: list[Exception | None] = []
            for _ in refs:
                try:
                    self._held_by(member_id)
                except NotFound as exc:
                    results.append(exc)
            return results
        return m.group.ack_many(m, refs)

    def nack(
        self,
        member_id: str,
        partition: int,
        offset: int,
        delay: float = 0.0,
        error: str | None = None,
    ) -> None:
        m = self._held_by(member_id)
        m.group.nack(m, partition, offset, delay, error)

    def extend(self, member_id: str, partition: int, offset: int, seconds: float) -> None:
        m = self._held_by(member_id)
        m.group.extend(m, partition, offset, seconds)

    def reject(self, member_id: str, partition: int, offset: int, reason: str = "rejected") -> None:
        m = self._held_by(member_id)
        m.group.reject(m, partition, offset, reason)
