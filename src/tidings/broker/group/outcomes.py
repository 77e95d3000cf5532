"""How a group's deliveries ended, counted since the broker started (or the group was
created): the split behind ``GroupInfo.settlements`` and the ``outcome`` label of
``tidings_group_settlements_total``. Plain integer slots, bumped on the hot path."""

from __future__ import annotations

OUTCOMES = ("acked", "nacked", "rejected", "expired", "dead_lettered", "lease_expired", "deleted")


class Outcomes:
    """acked (auto-acks included), nacked (each a retry or, past max deliveries, a dead
    letter), rejected, expired (TTL passed before delivery), dead_lettered (moved to the
    dead-letter topic, for any reason), lease_expired (a lease ran out unsettled), deleted (by
    an operator, see tidings.broker.deletion)."""

    __slots__ = OUTCOMES

    def __init__(self) -> None:
        self.acked = 0
        self.nacked = 0
        self.rejected = 0
        self.expired = 0
        self.dead_lettered = 0
        self.lease_expired = 0
        self.deleted = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in OUTCOMES}
