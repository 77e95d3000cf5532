"""One MQTT subscription: the consumer group members that read its messages, one per tidings
topic it spans (docs/mqtt.md, "The mapping").

A filter that names its first level (``sensors/#``) reads one tidings topic, so one member.
A filter whose first level is a wildcard (``+/status``, ``#``) spans every tidings topic it
covers (``Filter.covers``: not the internal ``_*`` ones) that its user may subscribe to: a
member of the subscription's group on each, and on each topic created later
(``Broker.topic_watchers``; the listener calls ``Session.add_topic``). The group has the same
name on every topic (a private ``mqtt.<random>`` or the ``$share`` group), so acknowledging a
delivery is the member of the delivery's topic.

:class:`Outbound` is a QoS 1/2 delivery the client has not completed, by topic, partition and
offset in that group.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ...model import Delivery, GroupSpec, StartKind
from . import codec as m
from .mapping import Filter

if TYPE_CHECKING:
    from ..auth import User
    from .session import Session


PRIVATE_LEASE = 86400.0  # seconds: a plain subscription's delivery is never re-sent while
# the connection lives (a client a day late with its PUBACK gets it again)


def may_subscribe(user: User | None, topic: str) -> bool:
    """No users file (None): everything; else the user's ``subscribe`` patterns."""
    return user is None or user.may("subscribe", topic)


class Subscription:
    __slots__ = (
        "filter", "group", "identifier", "members", "options", "private", "qos", "ready",
        "session", "stash",
    )  # fmt: skip

    def __init__(
        self,
        session: Session,
        flt: Filter,
        options: m.Subscription,
        qos: int,
        group: str,
        identifier: int = 0,
    ) -> None:
        self.session = session
        self.identifier = identifier  # v5 Subscription Identifier (0: none), §3.8.2.1.2
        self.filter = flt
        self.options = options  # as subscribed (v5: no local, retain as published, handling)
        self.qos = qos
        self.group = group
        self.private = flt.share is None
        self.members: dict[str, str] = {}  # tidings topic -> member id, while connected
        self.ready = False
        self.stash: list[tuple[str, list[Delivery]]] = []

    def spec(self, topic: str, start: StartKind = "latest") -> GroupSpec:
        """The group on ``topic``; ``start`` is where a new private group begins. A private
        group's lease is ``PRIVATE_LEASE``: its one member is the session, whose deliveries
        stay the client's until it acknowledges them or the connection ends (then they
        return at once), and MQTT 5.0 §4.4 forbids sending them again meanwhile."""
        if self.private:
            return GroupSpec(topic=topic, name=self.group, start=start, auto_ack=self.qos == 0,
                             lease=PRIVATE_LEASE)  # fmt: skip
        return GroupSpec(topic=topic, name=self.group)

    def topics(self, names: list[str], user: User | None) -> list[str]:
        """Of the topics ``names``, those the subscription reads: its own (its rights were
        checked at SUBSCRIBE), or for a first-level wildcard each it covers that ``user`` may
        subscribe to."""
        flt = self.filter
        if not flt.spans_topics:
            return [flt.topic]
        return [n for n in names if flt.covers(n) and may_subscribe(user, n)]

    def deliverer(self, topic: str) -> Callable[[list[Delivery]], None]:
        """The ``deliver`` callback of its member on ``topic``."""

        def deliver(deliveries: list[Delivery]) -> None:
            if not self.ready:  # the engine dispatches inside join: SUBACK goes first
                self.stash.append((topic, deliveries))
                return
            self.session.send_deliveries(self, topic, deliveries)

        return deliver


class Outbound:
    """A QoS 1/2 delivery the client has not completed; ``released``: QoS 2 after PUBREC
    (settled in its group, PUBREL sent, waiting for PUBCOMP). A retained message has no
    place in a group (partition -1)."""

    __slots__ = ("offset", "partition", "qos", "released", "sub", "topic")

    def __init__(self, sub: Subscription, topic: str, partition: int, offset: int, qos: int):
        self.sub = sub
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.qos = qos
        self.released = False
