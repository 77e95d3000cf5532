"""A consumer group's in-memory state and its queues (the base of
:class:`~tidings.broker.group.consumer_group.ConsumerGroup`, which delivers from them).

Shared groups keep one ``ready`` queue over all partitions (plus, when ``key_ordered``, a
per-key waiting line so one key has at most one active message). Ordered groups keep one queue
per partition, delivered strictly in offset order to the partition's owner; a partition that
moved is fenced: its new owner gets nothing until the previous owner's in-flight messages of
it are settled or expired. Either way only a
bounded window of the backlog is loaded from the store; ``read_pos`` says where loading goes on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from ...model import GroupSpec
from ...storage.cursor import GroupCursor
from ..rates import RateMeter
from ..topics import TopicState
from .entries import Entry
from .member import Member
from .outcomes import Outcomes

if TYPE_CHECKING:
    from .host import LogReader

LOAD_BATCH = 256
SHARED_WINDOW = 1024  # loaded, not yet delivered entries a shared group keeps ready
KEYED_WINDOW = 8192  # the same for key_ordered groups, whose waiting lines also count
ORDERED_WINDOW = 256  # per partition


class GroupQueues:
    def __init__(self, spec: GroupSpec, topic: TopicState, cursors: dict[int, GroupCursor]):
        self.spec = spec
        self.name = spec.name
        self.topic = topic
        n = len(topic.parts)
        self.cursors = [cursors.get(p) or GroupCursor(topic.parts[p].first) for p in range(n)]
        for p, cursor in enumerate(self.cursors):
            if cursor.floor < topic.parts[p].first:
                cursor.move_floor(topic.parts[p].first)
        self.read_pos = [c.floor for c in self.cursors]
        self.ready: deque[Entry] = deque()
        self.inflight: dict[tuple[int, int], Entry] = {}
        self.delayed: dict[tuple[int, int], Entry] = {}
        self.active_keys: set[str] = set()
        self.waiting: dict[str, deque[Entry]] = {}
        self.waiting_count = 0
        self.pqueues: list[deque[Entry]] = [deque() for _ in range(n)]
        self.owners: list[Member | None] = [None] * n
        self.pinflight = [0] * n
        # ordered: the member holding a partition's in-flight entries. After a handover it is
        # the previous owner until they are settled or expired (the fence, see
        # ConsumerGroup.rebalance).
        self.pholder: list[Member | None] = [None] * n
        self.wake_at = [0.0] * n  # ordered: when a waiting partition head is due
        self.members: list[Member] = []
        self.rotation = 0
        self.dead_lettered = 0
        self.outcomes = Outcomes()
        self.deliver_meter = RateMeter()
        self.ack_meter = RateMeter()
        self.load_rr = 0

    @property
    def ordered(self) -> bool:
        return self.spec.mode == "ordered"

    # -- loading -----------------------------------------------------------------------------

    def load_shared(self, store: LogReader, admit: Callable[[Entry], None]) -> bool:
        """Load more of the backlog into the shared queues; False when nothing was left."""
        window = KEYED_WINDOW if self.spec.key_ordered else SHARED_WINDOW
        parts = self.topic.parts
        loaded = False
        n = len(parts)
        for i in range(n):
            if len(self.ready) + self.waiting_count >= window:
                break
            p = (self.load_rr + i) % n
            if self._load_partition(store, p, LOAD_BATCH, admit):
                loaded = True
        self.load_rr = (self.load_rr + 1) % n
        return loaded

    def load_ordered(self, store: LogReader, p: int, admit: Callable[[Entry], None]) -> bool:
        if len(self.pqueues[p]) >= ORDERED_WINDOW:
            return False
        return self._load_partition(store, p, ORDERED_WINDOW, admit)

    def _load_partition(
        self, store: LogReader, p: int, count: int, admit: Callable[[Entry], None]
    ) -> bool:
        part = self.topic.parts[p]
        pos = max(self.read_pos[p], part.first)
        if pos >= part.visible:
            self.read_pos[p] = pos
            return False
        cursor = self.cursors[p]
        if cursor.floor > pos:
            pos = cursor.floor
        count = min(count, part.visible - pos)
        records = part.from_tail(pos, count)
        if records is None:
            records = store.read(self.topic.name, p, pos, count)
        loaded = False
        for record in records:
            if record.offset >= part.visible:
                break
            pos = record.offset + 1
            if cursor.is_acked(record.offset):
                continue
            admit(Entry(p, record))
            loaded = True
        self.read_pos[p] = pos
        return loaded

    # -- shared queues -----------------------------------------------------------------------

    def enqueue_shared(self, entry: Entry, front: bool = False) -> None:
        """Make a shared entry ready (its key, if key_ordered, is already active for it)."""
        if front:
            self.ready.appendleft(entry)
        else:
            self.ready.append(entry)

    def claim_key(self, entry: Entry) -> bool:
        """key_ordered: True if ``entry`` may become active now; else it waits in line."""
        key = entry.key
        if key is None:
            return True
        if key in self.active_keys:
            self.waiting.setdefault(key, deque()).append(entry)
            self.waiting_count += 1
            return False
        self.active_keys.add(key)
        return True

    def release_key(self, key: str | None) -> Entry | None:
        """key_ordered: the key's active message is settled; return the next one in line."""
        if key is None:
            return None
        line = self.waiting.get(key)
        if line:
            entry = line.popleft()
            self.waiting_count -= 1
            if not line:
                del self.waiting[key]
            return entry
        self.active_keys.discard(key)
        return None

    def take_out(self, partition: int, offset: int) -> tuple[Entry | None, bool]:
        """Remove a loaded, not leased entry from the queues (a message deleted by id):
        (the entry, True) if it was active (ready, delayed or an ordered partition's queue:
        its key, if any, is held for it), (the entry, False) if it waited behind its key,
        (None, False) if it is not loaded."""
        ref = (partition, offset)
        entry = self.delayed.pop(ref, None)
        if entry is not None:
            return entry, True
        for q in (self.ready, self.pqueues[partition]):
            for queued in q:
                if queued.partition == partition and queued.offset == offset:
                    q.remove(queued)
                    return queued, True
        for key, line in self.waiting.items():
            for queued in line:
                if queued.partition == partition and queued.offset == offset:
                    line.remove(queued)
                    self.waiting_count -= 1
                    if not line:
                        del self.waiting[key]
                    return queued, False
        return None, False

    def requeue_ordered(self, entry: Entry) -> None:
        q = self.pqueues[entry.partition]
        i = 0
        for i, queued in enumerate(q):  # noqa: B007 - the index is what we want
            if queued.offset > entry.offset:
                break
        else:
            i = len(q)
        q.insert(i, entry)

    # -- members -----------------------------------------------------------------------------

    def next_member(self, auto_ack: bool) -> Member | None:
        """The next member with capacity, rotating for fairness."""
        members = self.members
        n = len(members)
        for i in range(n):
            m = members[(self.rotation + i) % n]
            if m.capacity(auto_ack) > 0:
                self.rotation = (self.rotation + i + 1) % n
                return m
        return None

    # -- stats -------------------------------------------------------------------------------

    def unloaded(self) -> int:
        return sum(
            max(part.visible - max(self.read_pos[p], part.first), 0)
            for p, part in enumerate(self.topic.parts)
        )

    def lag(self) -> int:
        total = 0
        for p, part in enumerate(self.topic.parts):
            cursor = self.cursors[p]
            floor = max(cursor.floor, part.first)
            total += max(part.visible - floor, 0) - sum(1 for o in cursor.acked if o >= floor)
        return total
