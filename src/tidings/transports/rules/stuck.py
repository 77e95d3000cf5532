"""When a member is stuck, and when it is stuck for good: the built-in broker's rule, kept by a
member's own transport on engines that have no broker to keep it.

A member is *stuck* while leases ran out on it (messages it buffered or held, unsettled, past
their lease) and it settled nothing since: no ack, nack, reject or extend, and it took no
message. Still stuck ``periods`` lease periods after the first of those expiries, it is stuck
for good and is closed (``MemberStuck``), so that its messages (and an ordered group's
partitions) go to the other members. Counted in lease periods, not messages: a whole prefetch
that expires at once is one stall. ``periods`` 0 never closes a member (it is still reported).
Mirrors ``tidings.broker.group.member`` / ``consumer_group``.
"""

from __future__ import annotations

from ...errors import MemberStuck

STUCK_MEMBER_LEASES = 3  # the built-in broker's --stuck-member-leases default


class StuckWatch:
    """One member's stall: expiries since its last sign of life, and since when."""

    __slots__ = ("expiries", "lease", "periods", "since")

    def __init__(self, lease: float, periods: int = STUCK_MEMBER_LEASES) -> None:
        self.lease = lease
        self.periods = periods
        self.expiries = 0  # leases that ran out on the member since it last settled
        self.since: float | None = None  # (monotonic) when the first of those ran out

    @property
    def stuck(self) -> bool:
        return self.expiries > 0

    def expired(self, n: int, now: float) -> None:
        """``n`` leases of the member ran out (n >= 1)."""
        self.expiries += n
        if self.since is None:
            self.since = now

    def alive(self) -> None:
        """The member settled or took a message: it is not stuck."""
        self.expiries = 0
        self.since = None

    def for_good(self, now: float) -> bool:
        """Stuck for ``periods`` lease periods since the first expiry: close it."""
        return (
            self.periods > 0
            and self.since is not None
            and now - self.since >= self.periods * self.lease
        )

    def error(self, topic: str, group: str) -> MemberStuck:
        return MemberStuck(
            f"this subscription to {topic}/{group} was closed: its leases kept expiring "
            f"({self.expiries} in a row) with no ack, nack or reject for {self.periods} lease "
            "periods (a consumer that stopped taking messages); its messages went to other "
            "members. Settle or extend within the lease, and subscribe again"
        )
