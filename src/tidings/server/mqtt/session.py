"""An MQTT session: a client's subscriptions and the QoS 1/2 exchanges it has not completed,
apart from the connection that carries them (MQTT 3.1.1 §3.1.2.4, 5.0 §4.1).

A :class:`Session` holds the client's subscriptions (one tidings consumer group member each,
see ``mapping``), the deliveries it has not completed (packet id -> :class:`Outbound`), the
QoS 2 packet ids it received and has not released yet (packet id -> the producer message id
it was stored under, see ``exactly_once``) and the packet-id counter. It writes through its
connection (``conn``); a persistent session (``expiry`` > 0) outlives it: ``detach`` leaves
the groups (un-acknowledged deliveries return to them, the packet ids they had are kept) and
``attach`` joins them again for the next connection, which gets those deliveries again with
DUP set and their packet ids, and the PUBRELs still owed (§4.4). ``sessions`` keeps them.
Deliveries to the client (MQTT 5.0 §4.3):

- QoS 0: written and settled (an auto-ack group for a QoS 0 subscription);
- QoS 1: leased in its group until the client's PUBACK;
- QoS 2: leased until the client's PUBREC, which acknowledges it in the group (from then on
  the client owns it; it is never sent again as a PUBLISH), then PUBREL until PUBCOMP
  frees the packet id.

The client's Receive Maximum (v5 §3.3.4, §4.9; at most ``RECEIVE_MAXIMUM``) bounds the QoS
1/2 PUBLISHes it has not completed over the whole connection, every subscription and topic
together: ``inflight`` holds them, and a delivery that would exceed it waits, leased in its
group, in ``waiting`` (in arrival order) until a PUBACK, a PUBCOMP or a refusing PUBREC
frees a place. Each group member's prefetch is the same number, so ``waiting`` holds at
most that many per member.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ...errors import TidingsError
from ...headers import REPLY_TO
from ...model import Delivery, StartKind
from ...names import is_reply_topic
from ..auth import require
from . import codec as m
from .mapping import (
    CLIENT_HEADER,
    delivered_qos,
    expiry_left,
    mqtt_topic,
    parse_filter,
    reason_of,
    to_publish,
    was_retained,
)
from .subscription import Outbound, Subscription, may_subscribe

if TYPE_CHECKING:
    from ...broker import Broker
    from ..auth import User
    from .listener import MqttConnection

log = logging.getLogger("tidings.server.mqtt")

RECEIVE_MAXIMUM = 100  # QoS 1/2 deliveries in flight per connection (v5: or the client's less)
MAX_QOS = 2
PRIVATE_GROUP = "mqtt."  # the prefix of a plain subscription's group
_NONE: set[int] = set()


class Session:
    __slots__ = ("broker", "client_id", "conn", "expiry", "inflight", "next_pid",
                 "offline_since", "receive_maximum", "received", "resend", "stored", "subs",
                 "user_name", "version", "waiting")  # fmt: skip

    def __init__(self, conn: MqttConnection | None, broker: Broker, client_id: str = "") -> None:
        self.conn: MqttConnection = conn  # type: ignore[assignment]  # None: loaded, offline
        self.broker = broker
        self.client_id = client_id
        self.user_name = ""  # whose session it is (a client id is not a credential)
        self.version = conn.version if conn is not None else m.V5
        self.expiry = 0  # seconds after the connection ends; 0: ends with it (NEVER: never)
        self.offline_since: float | None = None  # wall clock, while no connection has it
        self.stored = False  # a record of it is in the broker's store (see ``sessions``)
        self.receive_maximum = RECEIVE_MAXIMUM
        self.subs: dict[str, Subscription] = {}
        self.inflight: dict[int, Outbound] = {}
        # QoS 1/2 deliveries held back by the receive maximum: (subscription, topic or ""
        # for a retained message, the delivery); None while none is (a deque's first block
        # is 624 bytes, most of an idle connection's memory: issue #21)
        self.waiting: collections.deque[tuple[Subscription, str, Delivery]] | None = None
        self.received: dict[int, str] = {}  # inbound QoS 2: packet id -> producer message id
        # (group, topic, partition, offset) -> packet id
        self.resend: dict[tuple[str, str, int, int], int] = {}
        self.next_pid = 0

    @property
    def persistent(self) -> bool:
        return self.expiry > 0

    def detach(self) -> None:
        """The connection ended, the session stays: leave the groups (their un-acknowledged
        deliveries return to them), remembering the packet ids those had."""
        for pid, entry in list(self.inflight.items()):
            if not entry.released:
                del self.inflight[pid]
                if entry.partition >= 0:
                    key = (entry.sub.group, entry.topic, entry.partition, entry.offset)
                    self.resend[key] = pid
        self.waiting = None  # leased in their groups: they return with the members
        for sub in self.subs.values():
            self.leave(sub)
            sub.ready = False
            sub.stash = []

    def attach(self, conn: MqttConnection) -> None:
        """A connection resumes the session (after its CONNACK): the PUBRELs owed first, then
        the groups joined again (§4.4: unacknowledged PUBLISHes again, DUP set)."""
        self.conn = conn
        self.version = conn.version
        self.offline_since = None
        self.enforce_rights(conn.user)  # the users file may have changed while it was away
        for pid, entry in self.inflight.items():
            if entry.released:
                conn.send(m.Ack(m.PUBREL, pid))
        for sub in self.subs.values():
            # a wildcard's topics created while the session was offline: all they hold (a
            # one-topic subscription's group exists; if it was deleted it starts anew)
            self.join(sub, "earliest" if sub.filter.spans_topics else "latest")
        for sub in self.subs.values():
            self.ready(sub)

    def join(self, sub: Subscription, start: StartKind = "latest", new: bool = False) -> None:
        """Join the subscription's group on each topic it reads (``start``: where a group
        that is new on a topic begins). A topic that fails (deleted meanwhile, say) is
        logged and skipped, except the one topic of a ``new`` subscription: SUBACK says why."""
        names = [t.name for t in self.broker.list_topics()] if sub.filter.spans_topics else []
        for topic in sub.topics(names, self.conn.user):
            if topic in sub.members:
                continue
            try:
                self.join_topic(sub, topic, start)
            except TidingsError as exc:
                if new and not sub.filter.spans_topics:
                    raise
                log.warning("mqtt %s: subscription %r does not read topic %r: %s",
                            self.conn.id, sub.filter.text, topic, exc)  # fmt: skip

    def join_topic(self, sub: Subscription, topic: str, start: StartKind) -> None:
        sub.members[topic] = self.broker.join(
            sub.spec(topic, start), prefetch=self.receive_maximum, deliver=sub.deliverer(topic)
        )

    def add_topic(self, sub: Subscription, topic: str) -> None:
        """A topic created after a first-level wildcard subscription: read it from its start
        (nothing published to it is missed)."""
        was_ready, sub.ready = sub.ready, False
        try:
            self.join_topic(sub, topic, "earliest")
        except TidingsError as exc:
            log.warning("mqtt %s: subscription %r does not read the new topic %r: %s",
                        self.conn.id, sub.filter.text, topic, exc)  # fmt: skip
        if was_ready:
            self.ready(sub)

    def leave(self, sub: Subscription) -> None:
        members, sub.members = sub.members, {}
        for member_id in members.values():
            with contextlib.suppress(TidingsError):
                self.broker.leave(member_id)

    def ready(self, sub: Subscription) -> None:
        sub.ready = True
        stash, sub.stash = sub.stash, []
        for topic, deliveries in stash:
            self.send_deliveries(sub, topic, deliveries)

    # -- acknowledgements from the client ------------------------------------------------------

    def on_ack(self, packet: m.Ack) -> None:
        pid = packet.packet_id
        if packet.type == m.PUBREL:  # the client releases a QoS 2 message it sent (§4.3.3)
            known = self.received.pop(pid, None) is not None
            reason = m.SUCCESS if known or self.version != m.V5 else m.PACKET_ID_NOT_FOUND
            self.conn.send(m.Ack(m.PUBCOMP, pid, reason))
            return
        entry = self.inflight.get(pid)
        if packet.type == m.PUBACK:
            if entry is not None and entry.qos == 1:
                del self.inflight[pid]
                self.settle(entry)
                self.send_waiting()
            return  # a PUBACK for a delivery of a subscription that ended: moot
        if packet.type == m.PUBREC:
            if entry is None or entry.qos != 2:
                reason = m.PACKET_ID_NOT_FOUND if self.version == m.V5 else m.SUCCESS
                self.conn.send(m.Ack(m.PUBREL, pid, reason))
                return
            if not entry.released:
                entry.released = True
                self.settle(entry)  # from here on the client has it: never sent again
            if packet.reason >= 0x80:  # the client refused it (v5): the exchange ends here
                del self.inflight[pid]
                self.send_waiting()
                return
            self.conn.send(m.Ack(m.PUBREL, pid))
            return
        # PUBCOMP
        if entry is not None and entry.released:
            del self.inflight[pid]
            self.send_waiting()

    def settle(self, entry: Outbound) -> None:
        if entry.partition < 0:  # a retained message: sent from the retained store
            return
        member_id = entry.sub.members.get(entry.topic)
        if member_id is not None:
            with contextlib.suppress(TidingsError):
                self.broker.ack(member_id, entry.partition, entry.offset)

    # -- subscriptions -------------------------------------------------------------------------

    def on_subscribe(self, packet: m.Subscribe) -> None:
        conn = self.conn
        reasons = []
        joined = []
        identifier = packet.properties.get("subscription_identifier", 0)
        for wanted in packet.subscriptions:
            if wanted.no_local and wanted.filter.startswith("$share/"):
                raise m.MalformedPacket(  # [MQTT-3.8.3-4]
                    f"no local on the shared subscription {wanted.filter!r}", m.PROTOCOL_ERROR
                )
        for wanted in packet.subscriptions:
            existed = wanted.filter in self.subs
            try:
                sub = self.subscribe(wanted, identifier)
            except m.MalformedPacket as exc:
                log.info("mqtt %s: subscription %r refused: %s", conn.id, wanted.filter, exc)
                reasons.append(exc.reason if self.version == m.V5 else m.V3_SUBACK_FAILURE)
            except TidingsError as exc:
                log.info("mqtt %s: subscription %r refused: %s", conn.id, wanted.filter, exc)
                reasons.append(reason_of(exc) if self.version == m.V5 else m.V3_SUBACK_FAILURE)
            else:
                reasons.append(sub.qos)
                joined.append((sub, existed))
        if self.persistent:  # SUBACK once the subscription is durable
            conn.spawn(self._suback_when_saved(m.Suback(packet.packet_id, reasons), joined))
        else:
            self.suback(m.Suback(packet.packet_id, reasons), joined)

    async def _suback_when_saved(
        self, suback: m.Suback, joined: list[tuple[Subscription, bool]]
    ) -> None:
        await self.conn.listener.kept.save(self)
        if self.conn.closed:
            return
        self.suback(suback, joined)

    def suback(self, suback: m.Suback, joined: list[tuple[Subscription, bool]]) -> None:
        conn = self.conn
        conn.send(suback)
        retained = conn.listener.retained
        for sub, existed in joined:
            # retained messages first (§3.3.1.3; 5.0 §3.8.3.1 Retain Handling: 0 always, 1 for
            # a new subscription only, 2 never; none for a shared subscription, §4.8.2)
            handling = sub.options.retain_handling if self.version == m.V5 else 0
            if sub.private and (handling == 0 or (handling == 1 and not existed)):
                self.send_retained(sub, retained.matching(sub.filter, conn.user))
            self.ready(sub)  # now the deliveries the engine gave at join may follow

    def subscribe(self, wanted: m.Subscription, identifier: int = 0) -> Subscription:
        conn = self.conn
        flt = parse_filter(wanted.filter)
        if not flt.spans_topics:  # a wildcard's rights are checked on each topic it reads
            require(conn.user, "subscribe", flt.topic, conn.who())
        old = self.subs.pop(wanted.filter, None)
        if old is not None:  # the same filter again replaces the subscription
            self.end(old)
            self.send_waiting()
        qos = min(wanted.qos, MAX_QOS)
        if not flt.spans_topics:
            conn.ensure_topic(flt.topic)
        group = f"{PRIVATE_GROUP}{secrets.token_hex(6)}" if flt.share is None else flt.share
        sub = Subscription(self, flt, wanted, qos, group, identifier)
        try:
            self.join(sub, new=True)
        except TidingsError:
            self.end(sub)
            raise
        self.subs[wanted.filter] = sub
        return sub

    def on_unsubscribe(self, packet: m.Unsubscribe) -> None:
        reasons = []
        for text in packet.filters:
            sub = self.subs.pop(text, None)
            if sub is None:
                reasons.append(m.NO_SUBSCRIPTION_EXISTED)
            else:
                self.end(sub)
                reasons.append(m.SUCCESS)
        self.conn.send(m.Unsuback(packet.packet_id, reasons))
        self.send_waiting()  # the ended subscriptions' places are free
        if self.persistent:
            self.conn.spawn(self.conn.listener.kept.save(self))

    def end(self, sub: Subscription) -> None:
        """Leave the subscription's group (un-acked deliveries return to it); a private
        group is deleted with it. Released QoS 2 exchanges still complete (PUBCOMP)."""
        for pid, entry in list(self.inflight.items()):
            if entry.sub is sub and not entry.released:
                del self.inflight[pid]
        if self.waiting:
            self.waiting = collections.deque(w for w in self.waiting if w[0] is not sub) or None
        topics = set(sub.members)
        self.leave(sub)
        if not sub.private:
            return
        if sub.filter.spans_topics:  # its group is on every topic it covers
            topics.update(t.name for t in self.broker.list_topics() if sub.filter.covers(t.name))
        else:
            topics.add(sub.filter.topic)
        for topic in topics:
            with contextlib.suppress(TidingsError):
                self.broker.delete_group(topic, sub.group)

    def enforce_rights(self, user: User | None) -> int:
        """Bring the subscriptions in line with ``user``'s rights (a users-file reload, or a
        session resumed after one): a subscription on a topic it may no longer subscribe to
        ends (as an UNSUBSCRIBE would: MQTT has no way to tell the client, messages stop, as
        with mosquitto's ACL), a first-level wildcard stops reading just those topics.
        Returns how many were ended or narrowed; a persistent session's record is saved."""
        changed = 0
        for text, sub in list(self.subs.items()):
            if not sub.filter.spans_topics:
                if not may_subscribe(user, sub.filter.topic):
                    del self.subs[text]
                    self.end(sub)
                    changed += 1
                continue
            lost = [t for t in sub.members if not may_subscribe(user, t)]
            for topic in lost:
                self.drop_topic(sub, topic)
            changed += bool(lost)
        if changed:
            log.warning("mqtt %s: %d subscriptions ended or narrowed: user %r may no longer "
                        "read their topics", self.client_id, changed, self.user_name)  # fmt: skip
            self.send_waiting()
            conn = self.conn
            if self.persistent and conn is not None and not conn.closed:
                conn.spawn(conn.listener.kept.save(self))
        return changed

    def drop_topic(self, sub: Subscription, topic: str) -> None:
        """A first-level wildcard stops reading ``topic``: its member leaves (un-acked
        deliveries return to the group), a private group there is deleted."""
        for pid, entry in list(self.inflight.items()):
            if entry.sub is sub and entry.topic == topic and not entry.released:
                del self.inflight[pid]
        if self.waiting:
            self.waiting = (
                collections.deque(w for w in self.waiting if not (w[0] is sub and w[1] == topic))
                or None
            )
        member_id = sub.members.pop(topic)
        with contextlib.suppress(TidingsError):
            self.broker.leave(member_id)
        if sub.private:
            with contextlib.suppress(TidingsError):
                self.broker.delete_group(topic, sub.group)

    def release(self) -> None:
        """The session ends: every subscription is left."""
        subs, self.subs = self.subs, {}
        for sub in subs.values():
            self.end(sub)
        self.inflight.clear()
        self.waiting = None
        self.received.clear()
        self.resend.clear()

    # -- deliveries ----------------------------------------------------------------------------

    def send_retained(self, sub: Subscription, deliveries: list[Delivery]) -> None:
        """Retained messages to a new subscription, with RETAIN set (§3.3.1.3)."""
        now = time.time()
        for d in deliveries:
            if delivered_qos(d, sub.qos) and self.window_full():
                self.wait(sub, "", d)
            else:
                self.retained_one(sub, d, now)

    def retained_one(self, sub: Subscription, d: Delivery, now: float) -> None:
        expiry = expiry_left(d, now)
        if expiry is not None and expiry <= 0:
            return
        qos = delivered_qos(d, sub.qos)
        pid = self.packet_id() if qos else None
        publish = to_publish(d, qos, pid, self.version, True, expiry)
        data = self.encode(sub, publish)
        if data is None:
            return
        if pid is not None:
            self.inflight[pid] = Outbound(sub, "", -1, -1, qos)
        self.conn.write(data)

    def window_full(self) -> bool:
        """Whether a QoS 1/2 PUBLISH must wait: the client's receive maximum is reached, or
        earlier ones wait already (they go first)."""
        return bool(self.waiting) or len(self.inflight) >= self.receive_maximum

    def encode(self, sub: Subscription, publish: m.Publish) -> bytes | None:
        """The bytes of a PUBLISH to the client (its subscription identifier, a topic alias),
        None if it is larger than the client takes."""
        version = self.version
        if sub.identifier and version == m.V5:
            publish.properties["subscription_identifier"] = sub.identifier
        data = m.encode(publish, version)
        conn = self.conn
        if len(data) > conn.client_max_packet:
            return None
        aliases = conn.aliases
        if aliases is not None and aliases.client_maximum and version == m.V5:
            aliases.outbound(publish)
            data = m.encode(publish, version)
        return data

    def send_deliveries(self, sub: Subscription, topic: str, deliveries: list[Delivery]) -> None:
        conn = self.conn
        if conn is None or conn.closed:
            return
        settle_now: list[tuple[int, int]] = []
        no_local = sub.options.no_local and self.version == m.V5
        now = time.time()
        for d in deliveries:
            if not sub.filter.matches(mqtt_topic(d)) or (
                no_local and d.headers.get(CLIENT_HEADER) == self.client_id  # §3.8.3.1
            ):
                settle_now.append((d.partition, d.offset))
            elif delivered_qos(d, sub.qos) and self.window_full():
                self.wait(sub, topic, d)
            else:
                self.deliver_one(sub, topic, d, now, settle_now)
        broker = self.broker
        member_id = sub.members.get(topic, "")
        if settle_now and not (sub.private and sub.qos == 0):
            broker.ack_many(member_id, settle_now)
        if sub.private and sub.qos == 0:  # auto-ack: credit back for what was written
            _call_soon(broker.add_credit, member_id, len(deliveries))

    def deliver_one(
        self,
        sub: Subscription,
        topic: str,
        d: Delivery,
        now: float,
        settle_now: list[tuple[int, int]],
    ) -> None:
        """Write one delivery of ``sub``'s member on ``topic``; what is settled at once (not
        sent, or QoS 0) is added to ``settle_now``."""
        expiry = expiry_left(d, now)
        if expiry is not None and expiry <= 0:  # expired on its way (5.0 §3.3.2.3.3)
            settle_now.append((d.partition, d.offset))
            return
        version = self.version
        qos = delivered_qos(d, sub.qos)
        pid = self.resend.pop((sub.group, topic, d.partition, d.offset), None) if qos else None
        dup = pid is not None or d.delivery_count > 1
        if qos and pid is None:
            pid = self.packet_id()
        # 5.0 §3.3.1.3: RETAIN as published with Retain As Published, else 0 (3.1.1 too)
        retain = version == m.V5 and sub.options.retain_as_published and was_retained(d)
        publish = to_publish(d, qos, pid, version, retain, expiry)
        publish.dup = dup and qos > 0  # §3.3.1.1: a redelivery (§4.4: its packet id)
        data = self.encode(sub, publish)
        if data is None:  # the client cannot take it: dropped
            settle_now.append((d.partition, d.offset))
            return
        if pid is not None:
            self.inflight[pid] = Outbound(sub, topic, d.partition, d.offset, qos)
        elif not sub.private or d.lease_until is not None:
            settle_now.append((d.partition, d.offset))
        reply_to = d.headers.get(REPLY_TO)
        conn = self.conn
        if reply_to is not None and is_reply_topic(reply_to):
            conn.grant_reply(reply_to)  # this client may answer the request, once
        conn.write(data)

    def wait(self, sub: Subscription, topic: str, d: Delivery) -> None:
        """Hold a delivery back until the receive maximum has a place for it."""
        if self.waiting is None:
            self.waiting = collections.deque()
        self.waiting.append((sub, topic, d))

    def send_waiting(self) -> None:
        """Places are free in the client's receive maximum: the deliveries held back, in the
        order they came."""
        waiting = self.waiting
        conn = self.conn
        if not waiting or conn is None or conn.closed:
            return
        now = time.time()
        while waiting and len(self.inflight) < self.receive_maximum:
            sub, topic, d = waiting.popleft()
            if not topic:
                self.retained_one(sub, d, now)
                continue
            settle_now: list[tuple[int, int]] = []
            self.deliver_one(sub, topic, d, now, settle_now)
            member_id = sub.members.get(topic)
            if settle_now and member_id is not None:
                with contextlib.suppress(TidingsError):
                    self.broker.ack_many(member_id, settle_now)
        if not waiting and self.waiting is waiting:  # drained: its block is freed
            self.waiting = None

    @property
    def resend_pids(self) -> set[int]:
        return set(self.resend.values()) if self.resend else _NONE

    def packet_id(self) -> int:
        for _ in range(65535):
            self.next_pid = self.next_pid % 65535 + 1
            if self.next_pid not in self.inflight and self.next_pid not in self.resend_pids:
                return self.next_pid
        raise m.MalformedPacket("no free packet identifier", m.QUOTA_EXCEEDED)


def _call_soon(fn: Callable[..., object], *args: object) -> None:
    def call() -> None:
        with contextlib.suppress(TidingsError):
            fn(*args)

    asyncio.get_running_loop().call_soon(call)
