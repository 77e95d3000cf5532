"""An MQTT session: a client's subscriptions and the QoS 1/2 exchanges it has not completed,
apart from the connection that carries them (MQTT 3.1.1 §3.1.2.4, 5.0 §4.1).

A :class:`Session` holds the client's subscriptions (one tidings consumer group member each,
see ``mapping``), the deliveries it has not completed (packet id -> :class:`Outbound`), the
QoS 2 packet ids it received and has not released yet (packet id -> the producer message id
it was stored under, see ``exactly_once``) and the packet-id counter. It writes through its
connection (``conn``). Deliveries to the client (MQTT 5.0 §4.3):

- QoS 0: written and settled (an auto-ack group for a QoS 0 subscription);
- QoS 1: leased in its group until the client's PUBACK;
- QoS 2: leased until the client's PUBREC, which acknowledges it in the group (from then on
  the client owns it; it is never sent again as a PUBLISH), then PUBREL until PUBCOMP
  frees the packet id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import TYPE_CHECKING

from ...errors import TidingsError
from ...model import Delivery, GroupSpec
from ..auth import require
from . import codec as m
from .mapping import (
    Filter,
    delivered_qos,
    mqtt_topic,
    parse_filter,
    reason_of,
    to_publish,
    was_retained,
)

if TYPE_CHECKING:
    from ...broker import Broker
    from .listener import MqttConnection

log = logging.getLogger("tidings.server.mqtt")

RECEIVE_MAXIMUM = 100  # QoS 1/2 deliveries in flight per subscription (v5: or the client's less)
MAX_QOS = 2


class Subscription:
    __slots__ = (
        "filter", "group", "member_id", "options", "private", "qos", "ready", "session", "stash",
    )  # fmt: skip

    def __init__(
        self, session: Session, flt: Filter, options: m.Subscription, qos: int, group: str
    ) -> None:
        self.session = session
        self.filter = flt
        self.options = options  # as subscribed (v5: no local, retain as published, handling)
        self.qos = qos
        self.group = group
        self.private = flt.share is None
        self.member_id = ""
        self.ready = False
        self.stash: list[Delivery] = []

    def deliver(self, deliveries: list[Delivery]) -> None:
        if not self.ready:  # the engine dispatches inside join: SUBACK goes first
            self.stash.extend(deliveries)
            return
        self.session.send_deliveries(self, deliveries)


class Outbound:
    """A QoS 1/2 delivery the client has not completed; ``released``: QoS 2 after PUBREC
    (settled in its group, PUBREL sent, waiting for PUBCOMP)."""

    __slots__ = ("offset", "partition", "qos", "released", "sub")

    def __init__(self, sub: Subscription, partition: int, offset: int, qos: int) -> None:
        self.sub = sub
        self.partition = partition
        self.offset = offset
        self.qos = qos
        self.released = False


class Session:
    def __init__(self, conn: MqttConnection, broker: Broker) -> None:
        self.conn = conn
        self.broker = broker
        self.receive_maximum = RECEIVE_MAXIMUM
        self.subs: dict[str, Subscription] = {}
        self.inflight: dict[int, Outbound] = {}
        self.received: dict[int, str] = {}  # inbound QoS 2: packet id -> producer message id
        self.next_pid = 0

    @property
    def version(self) -> int:
        return self.conn.version

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
                return
            self.conn.send(m.Ack(m.PUBREL, pid))
            return
        # PUBCOMP
        if entry is not None and entry.released:
            del self.inflight[pid]

    def settle(self, entry: Outbound) -> None:
        if entry.partition < 0:  # a retained message: sent from the retained store
            return
        with contextlib.suppress(TidingsError):
            self.broker.ack(entry.sub.member_id, entry.partition, entry.offset)

    # -- subscriptions -------------------------------------------------------------------------

    def on_subscribe(self, packet: m.Subscribe) -> None:
        conn = self.conn
        reasons = []
        joined = []
        for wanted in packet.subscriptions:
            existed = wanted.filter in self.subs
            try:
                sub = self.subscribe(wanted)
            except m.MalformedPacket as exc:
                log.info("mqtt %s: subscription %r refused: %s", conn.id, wanted.filter, exc)
                reasons.append(exc.reason if self.version == m.V5 else m.V3_SUBACK_FAILURE)
            except TidingsError as exc:
                log.info("mqtt %s: subscription %r refused: %s", conn.id, wanted.filter, exc)
                reasons.append(reason_of(exc) if self.version == m.V5 else m.V3_SUBACK_FAILURE)
            else:
                reasons.append(sub.qos)
                joined.append((sub, existed))
        conn.send(m.Suback(packet.packet_id, reasons))
        retained = conn.listener.retained
        for sub, existed in joined:
            # retained messages first (§3.3.1.3; 5.0 §3.8.3.1 Retain Handling: 0 always, 1 for
            # a new subscription only, 2 never; none for a shared subscription, §4.8.2)
            handling = sub.options.retain_handling if self.version == m.V5 else 0
            if sub.private and (handling == 0 or (handling == 1 and not existed)):
                self.send_retained(sub, retained.matching(sub.filter))
            # now the deliveries the engine gave at join may follow
            sub.ready = True
            stash, sub.stash = sub.stash, []
            if stash:
                self.send_deliveries(sub, stash)

    def subscribe(self, wanted: m.Subscription) -> Subscription:
        conn = self.conn
        flt = parse_filter(wanted.filter)
        require(conn.user, "subscribe", flt.topic, conn.who())
        old = self.subs.pop(wanted.filter, None)
        if old is not None:  # the same filter again replaces the subscription
            self.end(old)
        qos = min(wanted.qos, MAX_QOS)
        conn.ensure_topic(flt.topic)
        if flt.share is None:
            group = f"mqtt.{secrets.token_hex(6)}"
            spec = GroupSpec(topic=flt.topic, name=group, start="latest", auto_ack=qos == 0)
        else:
            group = flt.share
            spec = GroupSpec(topic=flt.topic, name=group)
        sub = Subscription(self, flt, wanted, qos, group)
        sub.member_id = self.broker.join(spec, prefetch=self.receive_maximum, deliver=sub.deliver)
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

    def end(self, sub: Subscription) -> None:
        """Leave the subscription's group (un-acked deliveries return to it); a private
        group is deleted with it. Released QoS 2 exchanges still complete (PUBCOMP)."""
        for pid, entry in list(self.inflight.items()):
            if entry.sub is sub and not entry.released:
                del self.inflight[pid]
        with contextlib.suppress(TidingsError):
            self.broker.leave(sub.member_id)
        if sub.private:
            with contextlib.suppress(TidingsError):
                self.broker.delete_group(sub.filter.topic, sub.group)

    def release(self) -> None:
        """The session ends: every subscription is left."""
        subs, self.subs = self.subs, {}
        for sub in subs.values():
            self.end(sub)
        self.inflight.clear()
        self.received.clear()

    # -- deliveries ----------------------------------------------------------------------------

    def send_retained(self, sub: Subscription, deliveries: list[Delivery]) -> None:
        """Retained messages to a new subscription, with RETAIN set (§3.3.1.3)."""
        conn = self.conn
        for d in deliveries:
            qos = delivered_qos(d, sub.qos)
            pid = self.packet_id() if qos else None
            data = m.encode(to_publish(d, qos, pid, self.version, retain=True), self.version)
            if len(data) > conn.client_max_packet:
                continue
            if pid is not None:
                self.inflight[pid] = Outbound(sub, -1, -1, qos)
            conn.write(data)

    def send_deliveries(self, sub: Subscription, deliveries: list[Delivery]) -> None:
        conn = self.conn
        if conn.closed:
            return
        settle_now: list[tuple[int, int]] = []
        version = self.version
        # 5.0 §3.3.1.3: RETAIN as published with Retain As Published, else 0 (3.1.1 too)
        keep_retain = version == m.V5 and sub.options.retain_as_published
        for d in deliveries:
            if not sub.filter.matches(mqtt_topic(d)):
                settle_now.append((d.partition, d.offset))
                continue
            qos = delivered_qos(d, sub.qos)
            pid = self.packet_id() if qos else None
            publish = to_publish(d, qos, pid, version, keep_retain and was_retained(d))
            publish.dup = d.delivery_count > 1 and qos > 0  # §3.3.1.1: a redelivery
            data = m.encode(publish, version)
            if len(data) > conn.client_max_packet:  # the client cannot take it: dropped
                settle_now.append((d.partition, d.offset))
                continue
            if pid is not None:
                self.inflight[pid] = Outbound(sub, d.partition, d.offset, qos)
            elif not sub.private or d.lease_until is not None:
                settle_now.append((d.partition, d.offset))
            conn.write(data)
        broker = self.broker
        if settle_now and not (sub.private and sub.qos == 0):
            broker.ack_many(sub.member_id, settle_now)
        if sub.private and sub.qos == 0:  # auto-ack: credit back for what was written
            _call_soon(broker.add_credit, sub.member_id, len(deliveries))

    def packet_id(self) -> int:
        for _ in range(65535):
            self.next_pid = self.next_pid % 65535 + 1
            if self.next_pid not in self.inflight:
                return self.next_pid
        raise m.MalformedPacket("no free packet identifier", m.QUOTA_EXCEEDED)


def _call_soon(fn: object, *args: object) -> None:
    def call() -> None:
        with contextlib.suppress(TidingsError):
            fn(*args)  # type: ignore[operator]

    asyncio.get_running_loop().call_soon(call)
