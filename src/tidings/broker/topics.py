"""A topic's in-memory state: its partitions' offsets and visibility, dedup index, rates and
groups. The log itself lives in the store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..model import TopicSpec
from ..partitioning import RoundRobin
from .dedup import DedupIndex
from .rates import RateMeter

if TYPE_CHECKING:
    from .groups import GroupState


class PartState:
    __slots__ = ("first", "next", "visible")

    def __init__(self, first: int, next_offset: int) -> None:
        self.first = first  # first retained offset
        self.next = next_offset  # next offset to assign
        self.visible = next_offset  # offsets below this are durable and deliverable


class TopicState:
    __slots__ = ("dedup", "groups", "name", "owner", "parts", "publish_meter", "rr", "spec")

    def __init__(self, spec: TopicSpec, bounds: list[tuple[int, int]], owner: object = None):
        self.spec = spec
        self.name = spec.name
        self.parts = [PartState(first, nxt) for first, nxt in bounds]
        self.dedup = DedupIndex(spec.dedup_window)
        self.groups: dict[str, GroupState] = {}
        self.rr = RoundRobin()
        self.publish_meter = RateMeter()
        self.owner = owner  # set for temporary topics (reply topics)

    def messages(self) -> int:
        return sum(p.next - p.first for p in self.parts)
