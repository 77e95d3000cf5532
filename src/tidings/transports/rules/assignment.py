"""Ordered groups managed by the transport: who is live, and who owns which partition.

Members heartbeat into the engine; a member is live while its latest heartbeat is younger than
the group's session timeout, judged against one reference time (the engine's clock, or the
judging member's own latest heartbeat), so members' clocks never matter. Partition ``p``
belongs to ``sorted(live)[p % len(live)]``: every member computes the same assignment from
the same list, with no coordinator.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Heartbeat:
    member: str
    time: float  # when the engine stored it (seconds, the engine's clock)
    left: bool = False  # the member said goodbye


def live_members(
    beats: Iterable[Heartbeat], me: str, session_timeout: float, now: float | None = None
) -> list[str]:
    """The live members, sorted, ``me`` always among them. ``now`` defaults to ``me``'s own
    latest heartbeat (else the latest of all)."""
    beats = list(beats)
    if now is None:
        mine = [b.time for b in beats if b.member == me]
        now = max(mine) if mine else max((b.time for b in beats), default=0.0)
    live = {b.member for b in beats if not b.left and now - b.time < session_timeout}
    live.add(me)
    return sorted(live)


def assign(partitions: int, live: list[str], member: str) -> set[int]:
    """The partitions ``member`` owns when ``live`` are the group's live members."""
    if member not in live:
        return set()
    ordered = sorted(live)
    return {p for p in range(partitions) if ordered[p % len(ordered)] == member}
