"""A group's position in one partition: every offset below ``floor`` is settled (acked or
dead-lettered); ``acked`` holds settled offsets above the floor (shared groups ack out of
order). The floor advances over contiguous acks, so the set stays small."""

from __future__ import annotations


class GroupCursor:
    __slots__ = ("acked", "floor")

    def __init__(self, floor: int = 0, acked: set[int] | None = None) -> None:
        self.floor = floor
        self.acked: set[int] = set(acked) if acked else set()
        self._compact()

    def ack(self, offset: int) -> bool:
        """Mark ``offset`` settled; False if it already was."""
        if offset < self.floor or offset in self.acked:
            return False
        if offset == self.floor:
            self.floor += 1
            self._compact()
        else:
            self.acked.add(offset)
        return True

    def is_acked(self, offset: int) -> bool:
        return offset < self.floor or offset in self.acked

    def move_floor(self, floor: int) -> None:
        """Set the floor (forward or back); acks below a forward floor are dropped."""
        self.floor = floor
        self.acked = {o for o in self.acked if o >= floor}
        self._compact()

    def forget_from(self, end: int) -> bool:
        """Forget acks of offsets at or above ``end`` (the log's next offset after recovery);
        True if there were any."""
        changed = False
        if self.floor > end:
            self.floor, changed = end, True
        if self.acked and max(self.acked) >= end:
            self.acked, changed = {o for o in self.acked if o < end}, True
        return changed

    def _compact(self) -> None:
        acked = self.acked
        floor = self.floor
        while floor in acked:
            acked.discard(floor)
            floor += 1
        self.floor = floor

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, GroupCursor)
            and self.floor == other.floor
            and self.acked == other.acked
        )

    def __repr__(self) -> str:
        return f"GroupCursor(floor={self.floor}, acked={sorted(self.acked)})"
