"""A member of a consumer group: its prefetch window, credit, leases and heartbeat.

Credit comes back when the member settles, not when its leases expire. A member whose leases
expired with no settle since is *stuck* (reported in the group's stats); still stuck
``Broker.stuck_member_leases`` lease periods after that first expiry, it is closed by the
broker (``MemberStuck``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ...errors import TidingsError
from ...model import Delivery
from .entries import Entry

if TYPE_CHECKING:
    from .consumer_group import ConsumerGroup


class Member:
    __slots__ = (
        "credit",
        "deliver",
        "expiries",
        "group",
        "id",
        "inflight",
        "inflight_bytes",
        "last_seen",
        "lost",
        "on_closed",
        "partitions",
        "paused",
        "prefetch",
        "prefetch_bytes",
        "seq",
        "session_timeout",
        "stuck_since",
    )

    def __init__(
        self,
        member_id: str,
        seq: int,
        group: ConsumerGroup,
        prefetch: int,
        deliver: Callable[[list[Delivery]], None],
        session_timeout: float | None,
        now: float,
        on_closed: Callable[[TidingsError], None] | None = None,
        prefetch_bytes: int = 0,
    ) -> None:
        self.id = member_id
        self.seq = seq  # join order, for stable assignment
        self.group = group
        self.prefetch = prefetch
        self.credit = prefetch  # auto-ack groups: deliveries the consumer can still take
        self.deliver = deliver
        self.on_closed = on_closed  # told why, when the broker removes it (MemberStuck)
        self.session_timeout = session_timeout
        self.last_seen = now
        self.inflight: dict[tuple[int, int], Entry] = {}
        # bytes of message bodies it holds un-settled; with prefetch_bytes (0: no budget) it
        # receives nothing more once they reach it (the message that crosses it is delivered,
        # so a message larger than the budget still gets through, one at a time)
        self.prefetch_bytes = prefetch_bytes
        self.inflight_bytes = 0
        self.partitions: set[int] = set()  # ordered groups: partitions assigned to it
        self.paused = False  # its connection cannot take more now (pause_member)
        # Leases that ran out on this member: their credit stays used until the member settles
        # something (ack, nack, reject), so a stuck member stops receiving instead of being
        # re-fed its own expired messages. ``expiries`` counts them since its last settle.
        self.lost = 0
        self.expiries = 0
        self.stuck_since: float | None = None  # when the first of those expired

    def capacity(self, auto_ack: bool) -> int:
        if self.paused:
            return 0
        if auto_ack:
            return self.credit
        if self.prefetch_bytes and self.inflight_bytes >= self.prefetch_bytes:
            return 0
        return self.prefetch - len(self.inflight) - self.lost

    def settled(self) -> None:
        """The member settled something: it is alive, its expired leases' credit comes back."""
        self.lost = 0
        self.expiries = 0
        self.stuck_since = None

    def lease_expired(self, now: float) -> bool:
        """Count an expired lease; True if it is the first since the member last settled."""
        if self.lost < self.prefetch:
            self.lost += 1
        self.expiries += 1
        if self.stuck_since is None:
            self.stuck_since = now
            return True
        return False

    def __repr__(self) -> str:
        return (
            f"Member({self.id!r}, inflight={len(self.inflight)}, parts={sorted(self.partitions)})"
        )
