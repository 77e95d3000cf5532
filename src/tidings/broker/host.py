"""What the engine's mixins reach on the :class:`~tidings.broker.engine.Broker` they are mixed
into: its state (the store, the clock, topics and members by id, the timer heap, the groups
with acks for the next commit) and the few calls one concern makes of another (find a topic
or a group, create a group, make a group, trim a partition, publish, mark the catalogue
changed).

:class:`BrokerHost` is that contract, written down once so the type checker can hold each
mixin to it and hold :class:`Broker` to providing it. The mixins derive from
:data:`MixinBase`: :class:`BrokerHost` for the type checker, plain :class:`object` at run time,
so the Broker's class hierarchy and its speed stay as they were (no Protocol machinery, no
abstract-class metaclass on the hot path).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import itertools
    from collections.abc import Sequence

    from ..clock import Clock
    from ..model import GroupSpec, Outgoing, Receipt
    from ..storage.base import Store
    from ..storage.cursor import GroupCursor
    from .group.consumer_group import ConsumerGroup
    from .group.member import Member
    from .timers import Timers
    from .topics import TopicState


class BrokerHost(Protocol):
    """The Broker as its mixins see it (each member is named for the module that defines it)."""

    # the engine's state (engine.Broker.__init__)
    store: Store
    clock: Clock
    _topics: dict[str, TopicState]
    _members: dict[str, Member]
    _member_seq: itertools.count[int]
    _timers: Timers
    _acks_due: dict[int, ConsumerGroup]  # groups with acks for the next commit

    # engine
    def _topic(self, name: str) -> TopicState:
        """The topic ``name``; NotFound if it does not exist."""
        ...

    def _new_group(
        self, spec: GroupSpec, t: TopicState, cursors: dict[int, GroupCursor]
    ) -> ConsumerGroup:
        """A consumer group of ``t`` at ``cursors``, hosted by this broker."""
        ...

    def _catalogue_changed(self) -> None:
        """Topics or groups changed: the next commit must sync, even under fsync=never."""
        ...

    def publish(
        self,
        topic: str,
        messages: Sequence[Outgoing],
        *,
        restore: Sequence[tuple[str, str | None]] | None = None,
    ) -> list[Receipt]: ...

    # group_catalogue
    def _group(self, topic: str, group: str) -> ConsumerGroup:
        """The group ``group`` of ``topic``; NotFound if either does not exist."""
        ...

    def create_group(self, spec: GroupSpec, *, exist_ok: bool = True) -> GroupSpec: ...

    # retention
    def _trim(self, t: TopicState, p: int, before: int) -> None:
        """Drop partition ``p`` of ``t`` below ``before``; groups behind skip forward."""
        ...


if TYPE_CHECKING:
    MixinBase = BrokerHost
else:
    MixinBase = object  # at run time a mixin is a plain class: the Broker provides the rest


__all__ = ["BrokerHost", "MixinBase"]
