"""A member of a consumer group: its prefetch window, credit, leases and heartbeat."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..model import Delivery
from .entries import Entry

if TYPE_CHECKING:
    from .groups import GroupState


class Member:
    __slots__ = (
        "credit",
        "deliver",
        "group",
        "id",
        "inflight",
        "last_seen",
        "partitions",
        "paused",
        "prefetch",
        "seq",
        "session_timeout",
    )

    def __init__(
        self,
        member_id: str,
        seq: int,
        group: GroupState,
        prefetch: int,
        deliver: Callable[[list[Delivery]], None],
        session_timeout: float | None,
        now: float,
    ) -> None:
        self.id = member_id
        self.seq = seq  # join order, for stable assignment
        self.group = group
        self.prefetch = prefetch
        self.credit = prefetch  # auto-ack groups: deliveries the consumer can still take
        self.deliver = deliver
        self.session_timeout = session_timeout
        self.last_seen = now
        self.inflight: dict[tuple[int, int], Entry] = {}
        self.partitions: set[int] = set()  # ordered groups: partitions assigned to it
        self.paused = False  # its connection cannot take more now (pause_member)

    def capacity(self, auto_ack: bool) -> int:
        if self.paused:
            return 0
        if auto_ack:
            return self.credit
        return self.prefetch - len(self.inflight)

    def __repr__(self) -> str:
        return (
            f"Member({self.id!r}, inflight={len(self.inflight)}, parts={sorted(self.partitions)})"
        )
