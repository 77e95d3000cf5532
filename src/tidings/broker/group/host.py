"""The narrow interface between a :class:`~tidings.broker.group.consumer_group.ConsumerGroup`
and the broker that holds it, as a nats-server consumer sees its stream.

A group reads the topic's log (the partitions' offsets and in-memory tail from its
:class:`~tidings.broker.topics.TopicState`, records through a :class:`LogReader`) and keeps its
timers on the broker's heap. Everything else it needs from outside goes through the four calls
of :class:`GroupHost`: the broker decides *when* dispatching runs after a settle, *when* acks
reach the store (its group commit), *how* a dead letter is appended (to a topic it may have to
create), and it keeps the members by id, for its drivers. The group never writes to the store
itself: acks wait in ``ConsumerGroup.pending_acks`` until the broker's next commit takes them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ...model import Outgoing, Receipt, Record
    from .consumer_group import ConsumerGroup
    from .member import Member


class LogReader(Protocol):
    """Reading the topic's log (a :class:`tidings.storage.base.Store` is one)."""

    def read(self, topic: str, partition: int, offset: int, count: int) -> list[Record]: ...


class GroupHost(Protocol):
    """What a consumer group asks of its broker."""

    # lease periods a member may stay stuck before the group closes it (0: never)
    stuck_member_leases: int

    def dispatch_soon(self, group: ConsumerGroup) -> None:
        """Run ``group.dispatch()`` after a settle: at once, or once per event-loop turn."""
        ...

    def acks_pending(self, group: ConsumerGroup) -> None:
        """``group`` journaled its first ack since the last commit (``pending_acks``): the
        next commit must take them, even when no publish follows."""
        ...

    def dead_letter(self, group: ConsumerGroup, topic: str, message: Outgoing) -> Receipt:
        """Append ``message`` to the dead-letter topic ``topic`` (created on demand); a
        TidingsError if it refuses it (the group keeps the message and retries)."""
        ...

    def forget_member(self, member: Member) -> None:
        """The group closed ``member`` (stuck): its id is no longer valid."""
        ...
