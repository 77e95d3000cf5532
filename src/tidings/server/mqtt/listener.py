"""The MQTT listener: MQTT 3.1.1 and 5.0 clients on the broker's engine, in its event loop.

``MqttListener(server).start(host, port, ssl)`` serves connections of :class:`MqttConnection`
(once per port: plain TCP, TLS; ``websocket`` feeds it WebSocket connections). The listener
holds what the ports share: client ids for takeover, the session limit
(``--mqtt-max-connections``) and the keep-alive sweep.
A connection authenticates CONNECT against the broker's users (same rights as the native
port, checked on the tidings topic of each MQTT topic), publishes inbound messages in
arrival order (QoS 1: PUBACK once the broker's commit made them durable), and joins one
tidings consumer group per subscription (see ``mapping``). Every protocol error ends in the
reason code the client is owed (CONNACK or DISCONNECT on 5.0, a close on 3.1.1); a bug in a
handler is logged and closes that connection only.

Subscriptions and deliveries to the client live in its ``session``; QoS 2 from the client is
stored once (``exactly_once``), answered with PUBREC after the commit.

Retained messages are kept in ``retained``, persistent sessions in ``kept`` (``sessions``).
Topic aliases in ``aliases``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Coroutine
from typing import TYPE_CHECKING, Any, cast

import msgspec

from ...errors import Forbidden, TidingsError, Unauthorized
from ...model import Outgoing, TopicSpec
from ...names import is_reply_topic
from ..auth import require
from ..tls import peer_subject
from . import codec as m
from .aliases import TOPIC_ALIAS_MAXIMUM, TopicAliases
from .exactly_once import message_id
from .linger import lingering_close
from .mapping import reason_of, split_topic, to_outgoing
from .retained import RetainedStore
from .session import RECEIVE_MAXIMUM, Session
from .sessions import Sessions

if TYPE_CHECKING:
    from ssl import SSLContext

    from ..app import BrokerServer
    from ..auth import User

log = logging.getLogger("tidings.server.mqtt")

KEEP_ALIVE_FACTOR = 1.5  # a client silent 1.5x its keep-alive is gone (MQTT 3.1.2.10)
SERVER_RECEIVE_MAXIMUM = 1000  # unacknowledged QoS 1/2 publishes a client may send
PUBLISH_RUN = 500  # inbound messages to one topic published in one engine call at most
SWEEP = 0.5  # seconds between keep-alive checks
MAX_REPLY_GRANTS = 10_000  # reply topics one connection may answer at once (oldest go first)
UNLIMITED_PACKET = m.MAX_REMAINING + 5  # a client that states no maximum packet size


class MqttConnection(asyncio.Protocol):
    # __slots__ (asyncio.Protocol has empty ones): no per-connection __dict__, which was the
    # largest object of an idle connection; the containers only some connections need (the
    # inbound queue, the topics it may publish to, reply grants, topic aliases, the packets
    # held during authentication) are None until first used (issue #21, memory per idle
    # connection)
    __slots__ = ("aliases", "authenticating", "broker", "client_id", "client_max_packet",
                 "closed", "closing", "connected", "counted", "decoder", "held", "id",
                 "inbound", "keep_alive", "last_received", "listener", "max_packet_size",
                 "may_publish", "opened", "peer", "problem_info", "publisher", "reply_grants",
                 "server", "session", "transport", "unacked_in", "user", "version",
                 "will")  # fmt: skip

    def __init__(self, listener: MqttListener, conn_id: str) -> None:
        self.listener = listener
        self.server = listener.server
        self.broker = listener.server.runtime.broker
        self.id = conn_id
        self.peer = "?"
        self.client_id = ""
        self.version = 0
        self.user: User | None = None
        self.connected = False
        self.counted = False  # holds one of the listener's sessions (--mqtt-max-connections)
        self.closed = False
        self.keep_alive = 0
        self.last_received = self.opened = time.monotonic()
        max_size = self.max_packet_size = listener.max_packet_size  # one int for all
        self.decoder = m.PacketDecoder(max_size)
        self.transport: asyncio.Transport | None = None
        self.client_max_packet = UNLIMITED_PACKET
        self.problem_info = True  # v5 Request Problem Information: reason strings on acks
        self.session = Session(self, self.broker)
        self.aliases: TopicAliases | None = None  # a v5 client's, once it uses them
        self.inbound: deque[m.Publish] | None = None
        self.unacked_in = 0  # QoS 1/2 publishes received and not answered yet
        self.publisher: asyncio.Task[None] | None = None
        self.will: m.Will | None = None
        self.may_publish: set[str] | None = None
        self.held: list[m.Packet] | None = None  # after CONNECT, while the password is checked
        self.authenticating = False
        self.closing = False  # DISCONNECT received: close once the publishes before it end
        # reply topics of requests delivered to this client -> replies it may publish there
        self.reply_grants: dict[str, int] | None = None

    @property
    def origin(self) -> str:
        who = f"user {self.user.name}, " if self.user is not None else ""
        return f"mqtt connection {self.id} ({self.peer}, {who}client {self.client_id})"

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream server's transport; asyncio.Protocol types the hook with the base class
        self.transport = cast("asyncio.Transport", transport)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        subject = peer_subject(transport)
        if subject is not None:  # mutual TLS: the client certificate's name, for the logs
            self.peer += f" cert {subject}"
        self.listener.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self.last_received = time.monotonic()
        try:
            packets = self.decoder.feed(data)
        except m.MalformedPacket as exc:
            log.warning("mqtt %s (%s): %s: closing", self.id, self.peer, exc)
            self.refuse(exc.reason, str(exc))
            return
        if self.authenticating:
            self.hold(packets)
            return
        self.handle_all(packets)

    def hold(self, packets: list[m.Packet]) -> None:
        if self.held is None:
            self.held = []
        self.held += packets

    def handle_all(self, packets: list[m.Packet]) -> None:
        for i, packet in enumerate(packets):
            if self.closed:
                return
            if self.authenticating:  # held again (the session record is being written)
                self.hold(packets[i:])
                return
            try:
                self.handle(packet)
            except m.MalformedPacket as exc:
                log.warning("mqtt %s (%s): %s: closing", self.id, self.peer, exc)
                self.refuse(exc.reason, str(exc))
                return
            except Exception:  # a bug must not take the broker down
                log.exception("mqtt %s: internal error handling %s", self.id, type(packet).__name__)
                self.refuse(m.UNSPECIFIED, "internal error")
                return
            if self.authenticating:  # the rest waits for the password check
                self.hold(packets[i + 1 :])
                return

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        self.listener.forget(self)
        if self.will is not None:  # gone without DISCONNECT: publish its will
            will, self.will = self.will, None
            # v5 Will Delay Interval (§3.1.3.2.2): later, unless the session resumes first
            session = self.session
            delay = min(will.properties.get("will_delay_interval", 0), session.expiry)
            if delay and session.conn is self:
                self.listener.kept.delay_will(self.client_id, delay, self.publish_will, will)
            elif not (delay and self.listener.kept.by_client.get(self.client_id) is session):
                self.publish_will(will)  # (not when a takeover resumed the session in time)
        self.listener.kept.closed(self)

    def publish_will(self, will: m.Will) -> None:
        self.spawn(self._publish_will(will))

    # -- packets -----------------------------------------------------------------------------

    def handle(self, packet: m.Packet) -> None:
        if isinstance(packet, m.Connect):
            self.on_connect(packet)
        elif isinstance(packet, m.Publish):
            self.on_publish(packet)
        elif isinstance(packet, m.Ack):
            self.session.on_ack(packet)
        elif isinstance(packet, m.Subscribe):
            self.session.on_subscribe(packet)
        elif isinstance(packet, m.Unsubscribe):
            self.session.on_unsubscribe(packet)
        elif isinstance(packet, m.Pingreq):
            self.send(m.Pingresp())
        elif isinstance(packet, m.Disconnect):
            if packet.reason != 0x04:  # 0x04: disconnect with will message
                self.will = None
            self.listener.kept.on_disconnect(self, packet)
            if self.publisher is None:
                self.close()
            else:  # the publishes before DISCONNECT are still answered
                self.closing = True
        else:  # AUTH: no enhanced authentication methods
            raise m.MalformedPacket(
                "enhanced authentication (AUTH) is not supported", m.PROTOCOL_ERROR
            )

    def on_connect(self, packet: m.Connect) -> None:
        self.version = packet.version
        self.keep_alive = packet.keep_alive
        limit = self.server.config.mqtt_max_keep_alive
        if self.version == m.V5 and limit and not 0 < packet.keep_alive <= limit:
            self.keep_alive = limit  # v5: CONNACK's Server Keep Alive tells the client
        props = packet.properties
        self.client_max_packet = props.get("maximum_packet_size", self.client_max_packet)
        # 0: no Reason String but on CONNACK, DISCONNECT and PUBLISH [MQTT-3.1.2-29]
        self.problem_info = props.get("request_problem_information", 1) != 0
        self.session.receive_maximum = min(props.get("receive_maximum", 65535), RECEIVE_MAXIMUM)
        alias_maximum = props.get("topic_alias_maximum", 0)
        self.aliases = TopicAliases(alias_maximum) if alias_maximum else None
        assigned = None
        if not packet.client_id:
            if self.version == m.V311 and not packet.clean_start:
                self.connack(m.V3_IDENTIFIER_REJECTED, m.CLIENT_ID_NOT_VALID)
                return
            assigned = packet.client_id = "tidings-" + secrets.token_hex(8)
        self.client_id = packet.client_id
        if packet.will is not None:
            try:
                split_topic(packet.will.topic)
            except m.MalformedPacket:
                self.connack(m.V3_SERVER_UNAVAILABLE, m.TOPIC_NAME_INVALID)
                return
        auth = self.server.auth
        if not auth.enabled:
            self.accept(packet, None, assigned)
            return
        secret = packet.password.decode("utf-8", "replace") if packet.password is not None else None
        user = auth.cached(packet.username, secret)
        if user is not None:
            self.accept(packet, user, assigned)
            return
        self.authenticating = True
        if self.transport is not None:
            self.transport.pause_reading()
        self.spawn(self._authenticate(packet, secret, assigned))

    async def _authenticate(
        self, packet: m.Connect, secret: str | None, assigned: str | None
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:  # a users reload during the check: check again on the new users
                auth = self.server.auth
                user = await loop.run_in_executor(None, auth.verify, packet.username, secret)
                if self.server.auth is auth:
                    break
        except Unauthorized as exc:
            log.warning(
                "mqtt authentication of user %r from %s failed: %s",
                packet.username, self.peer, exc,
            )  # fmt: skip
            self.connack(m.V3_BAD_USER_OR_PASSWORD, m.BAD_USER_OR_PASSWORD)
            return
        if self.closed:
            return
        self.authenticating = False
        self.accept(packet, user, assigned)
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()
        held, self.held = self.held, None
        if held:
            self.handle_all(held)

    def accept(self, packet: m.Connect, user: User | None, assigned: str | None) -> None:
        self.user = user
        if not self.listener.admit_session(self):
            log.warning(
                "mqtt %s (%s): refused, %d MQTT sessions already (--mqtt-max-connections)",
                self.id, self.peer, self.listener.sessions,
            )  # fmt: skip
            self.connack(m.V3_SERVER_UNAVAILABLE, m.QUOTA_EXCEEDED)
            return
        if packet.will is not None:
            topic, _ = split_topic(packet.will.topic)
            try:
                require(user, "publish", topic, self.who())
            except Forbidden:
                self.connack(m.V3_NOT_AUTHORIZED, m.NOT_AUTHORIZED)
                return
            self.will = packet.will
        owner = self.listener.kept.owner(self.client_id)
        if owner is not None and owner != (user.name if user is not None else ""):
            log.warning("mqtt %s (%s): client id %r has a session of another user: refused",
                        self.id, self.peer, self.client_id)  # fmt: skip
            self.will = None
            self.connack(m.V3_NOT_AUTHORIZED, m.NOT_AUTHORIZED)
            return
        self.listener.take_over(self)
        self.connected = True
        props: m.Properties = {}
        if self.version == m.V5:
            props = {
                "receive_maximum": SERVER_RECEIVE_MAXIMUM,
                "maximum_packet_size": self.max_packet_size,
                "topic_alias_maximum": TOPIC_ALIAS_MAXIMUM,
                "wildcard_subscription_available": 1,
                "subscription_identifier_available": 1,
                "shared_subscription_available": 1,
            }
            if assigned is not None:
                props["assigned_client_identifier"] = assigned
            if self.keep_alive != packet.keep_alive:
                props["server_keep_alive"] = self.keep_alive
        self.session, present, saving = self.listener.kept.open(self, packet)
        if saving is None:
            self.welcome(present, props)
            return
        self.authenticating = True  # CONNACK (and what follows) once the session is stored
        if self.transport is not None:
            self.transport.pause_reading()
        self.spawn(self._welcome_when_saved(saving, present, props))

    async def _welcome_when_saved(
        self, saving: Awaitable[None], present: bool, props: m.Properties
    ) -> None:
        await saving
        if self.closed:
            return
        self.authenticating = False
        self.welcome(present, props)
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()
        held, self.held = self.held, None
        if held:
            self.handle_all(held)

    def welcome(self, present: bool, props: m.Properties) -> None:
        self.send(m.Connack(m.SUCCESS, present, props))
        if present:
            self.session.attach(self)
        log.debug("mqtt %s from %s: client %r, MQTT %s", self.id, self.peer, self.client_id,
                  "5.0" if self.version == m.V5 else "3.1.1")  # fmt: skip

    def connack(self, v3_code: int, v5_reason: int) -> None:
        """Refuse the CONNECT and close."""
        self.send(m.Connack(v5_reason if self.version == m.V5 else v3_code))
        self.close_after_reason()

    def refuse(self, reason: int, why: str) -> None:
        """A protocol error: CONNACK or DISCONNECT with ``reason`` on 5.0, then close."""
        if self.version == m.V5 or (not self.connected and self.version == 0):
            if not self.connected:
                v3 = m.V3_UNACCEPTABLE_VERSION if reason == m.UNSUPPORTED_VERSION else None
                if v3 is not None:  # a 3.1.1 answer, which any client understands
                    self.send(m.Connack(v3), m.V311)
                elif self.version == m.V5:
                    self.send(m.Connack(reason, False, {"reason_string": why[:200]}))
            else:
                self.send(m.Disconnect(reason, {"reason_string": why[:200]}))
        self.close_after_reason()

    def grant_reply(self, topic: str) -> None:
        """A request naming the reply topic ``topic`` was delivered: one reply may be
        published there (as the native port's, and NATS' allow_responses)."""
        grants = self.reply_grants
        if grants is None:
            grants = self.reply_grants = {}
        grants[topic] = grants.pop(topic, 0) + 1
        if len(grants) > MAX_REPLY_GRANTS:
            del grants[next(iter(grants))]  # the oldest first

    def target(self, mqtt_topic: str) -> str:
        """The tidings topic of an inbound PUBLISH: a reply topic this client was given by a
        request, or the first level (MalformedPacket for what is not served)."""
        if self.reply_grants and mqtt_topic in self.reply_grants:
            return mqtt_topic
        return split_topic(mqtt_topic)[0]

    def on_publish(self, packet: m.Publish) -> None:
        if self.version == m.V5 and "topic_alias" in packet.properties:
            if self.aliases is None:
                self.aliases = TopicAliases()
            self.aliases.inbound(packet)
        if packet.qos:  # the receive maximum counts QoS 1 until PUBACK, QoS 2 until PUBCOMP
            received = self.session.received
            resend = packet.qos == 2 and packet.packet_id in received
            if not resend and self.unacked_in + len(received) >= SERVER_RECEIVE_MAXIMUM:
                raise m.MalformedPacket(
                    "more QoS 1/2 publishes in flight than the receive maximum",
                    m.RECEIVE_MAXIMUM_EXCEEDED,
                )
            self.unacked_in += 1
        if self.inbound is None:
            self.inbound = deque()
        self.inbound.append(packet)
        if self.publisher is None:
            self.publisher = asyncio.get_running_loop().create_task(self._publish_inbound())

    async def _publish_inbound(self) -> None:
        """Publish what arrived, in order: consecutive messages to one tidings topic go in one
        engine call (one append and one commit), acknowledged once it returns."""
        inbound = self.inbound
        assert inbound is not None  # made by on_publish, which started this task
        try:
            while inbound and not self.closed:
                first = inbound.popleft()
                run = [first]
                try:
                    topic = self.target(first.topic)
                except m.MalformedPacket as exc:
                    self.unacked_in -= first.qos > 0
                    self.publish_failed(first, exc.reason, str(exc))
                    continue
                while inbound and len(run) < PUBLISH_RUN:
                    nxt = inbound[0]
                    try:
                        if self.target(nxt.topic) != topic:
                            break
                    except m.MalformedPacket:  # refused on its own in the next round
                        break
                    run.append(inbound.popleft())
                try:
                    await self._publish_run(topic, run)
                finally:  # answered (PUBACK, PUBREC, or refused)
                    self.unacked_in -= sum(p.qos > 0 for p in run)
        except Exception:
            log.exception("mqtt %s: publishing failed", self.id)
            self.refuse(m.UNSPECIFIED, "internal error")
        finally:
            self.publisher = None
            if self.closing:
                self.close()

    async def _publish_run(self, topic: str, run: list[m.Publish]) -> None:
        received = self.session.received
        # QoS 2 with a packet id stored and not released yet: a resend, PUBREC only (§4.3.3)
        fresh = [p for p in run if not (p.qos == 2 and p.packet_id in received)]
        reply = is_reply_topic(topic)
        try:
            if reply:  # the answer to a request it was delivered: its grant is the right
                grants = self.reply_grants or {}
                left = grants.pop(topic, 0) - len(fresh)
                if left < 0:
                    raise Forbidden(f"{topic!r}: a reply topic takes one reply per request")
                if left:
                    grants[topic] = left
                self.server.alarms.refuse_publish(0)
            else:
                self.admit(topic)
            messages = [self.outgoing(p) for p in fresh]
            if messages:
                receipts = await self.server.runtime.publish(topic, messages, self.origin)
                # a first attempt (DUP 0) the broker took for an earlier identical message
                # with the same packet id is new all the same: stored without a producer id
                again = [
                    msgspec.structs.replace(msg, msg_id=None)
                    for p, msg, r in zip(fresh, messages, receipts, strict=True)
                    if r.duplicate and not p.dup
                ]
                if again:
                    await self.server.runtime.publish(topic, again, self.origin)
            # resends too: storing it again is harmless (a reply is never retained)
            retain = [p for p in run if p.retain and not reply]
            if retain:
                await self.listener.retained.put(retain, self.origin)
        except TidingsError as exc:
            reason = reason_of(exc)
            for packet in run:
                self.publish_failed(packet, reason, exc.message)
            return
        for packet, msg in zip(fresh, messages, strict=True):
            if packet.qos == 2 and packet.packet_id is not None and msg.msg_id is not None:
                received[packet.packet_id] = msg.msg_id
        for packet in run:
            if packet.packet_id is None:
                continue
            if packet.qos == 1:
                self.send(m.Ack(m.PUBACK, packet.packet_id))
            elif packet.qos == 2:
                self.send(m.Ack(m.PUBREC, packet.packet_id))

    def outgoing(self, packet: m.Publish) -> Outgoing:
        msg = to_outgoing(packet, self.client_id)
        if packet.qos == 2:
            msg.msg_id = message_id(self.client_id, packet)
        return msg

    def admit(self, topic: str) -> None:
        may = self.may_publish
        if may is None or topic not in may:
            require(self.user, "publish", topic, self.who())
            self.ensure_topic(topic)
            if may is None:
                may = self.may_publish = set()
            may.add(topic)
        self.server.alarms.refuse_publish(0)

    def ensure_topic(self, topic: str) -> None:
        """MQTT has no topic creation: a topic that does not exist yet is created (with the
        default settings) for a user who may administer it."""
        if topic in {t.name for t in self.broker.list_topics()}:
            return
        require(self.user, "admin", topic, self.who())
        self.broker.create_topic(TopicSpec(name=topic), exist_ok=True)

    def publish_failed(self, packet: m.Publish, reason: int, why: str) -> None:
        log.warning("mqtt %s: publish to %r refused: %s", self.id, packet.topic, why)
        if self.version == m.V5 and packet.qos and packet.packet_id is not None:
            ack = m.PUBACK if packet.qos == 1 else m.PUBREC
            props = {"reason_string": why[:200]} if self.problem_info else {}
            self.send(m.Ack(ack, packet.packet_id, reason, props))
        elif self.version == m.V5:
            self.refuse(reason, why)  # QoS 0 has no answer: say it with DISCONNECT
        else:
            self.close()  # MQTT 3.1.1 has no negative PUBACK: closing is the answer

    # -- writing, closing --------------------------------------------------------------------

    def send(self, packet: m.Packet, version: int | None = None) -> None:
        self.write(m.encode(packet, version or self.version or m.V5))

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def close_after_reason(self) -> None:
        """Close after a CONNACK or DISCONNECT the client must read: a lingering close
        (``linger``), so that what it still sends does not reset the connection before it
        has read the reason. The connection ends at once, as with ``close``."""
        transport = self.transport
        if transport is None or self.closed or not lingering_close(transport):
            self.close()
            return
        self.transport = None  # the socket is the drain's now
        asyncio.get_running_loop().call_soon(self.connection_lost, None)

    def who(self) -> str:
        return f"mqtt connection {self.id} from {self.peer}"

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.listener.tasks.add(task)
        task.add_done_callback(self.listener.tasks.discard)

    async def _publish_will(self, will: m.Will) -> None:
        try:
            topic, _ = split_topic(will.topic)
            self.admit(topic)
            packet = m.Publish(will.topic, will.payload, will.qos, will.retain, False, None,
                               will.properties)  # fmt: skip
            message = to_outgoing(packet, self.client_id)
            await self.server.runtime.publish(topic, [message], self.origin)
            if will.retain:
                await self.listener.retained.put([packet], self.origin)
        except TidingsError as exc:
            log.warning("mqtt %s: the will to %r was not published: %s", self.id, will.topic, exc)


class MqttListener:
    """The MQTT port of a broker server."""

    def __init__(self, server: BrokerServer) -> None:
        self.server = server
        self.connections: set[MqttConnection] = set()
        self.by_client: dict[str, MqttConnection] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.address: tuple[str, int] | None = None  # of the first port started
        self.addresses: list[tuple[str, int]] = []
        self.sessions = 0  # connections past CONNECT (the --mqtt-max-connections count)
        self.max_sessions = server.config.mqtt_max_connections
        config = server.config
        self.max_packet_size = config.mqtt_max_packet_size or config.max_message_size + 64 * 1024
        self._listeners: list[asyncio.AbstractServer] = []
        self._sweeper: asyncio.Task[None] | None = None
        self._seq = 0
        self._instance = secrets.token_hex(2)
        self.retained = RetainedStore(server)
        self.kept = Sessions(server)

    async def start(self, host: str, port: int, ssl: SSLContext | None = None) -> tuple[str, int]:
        """Listen on one more port (``ssl``: TLS); the address it is bound to."""
        loop = asyncio.get_running_loop()
        if not self._listeners:  # the first port: the retained messages are read first
            held = self.retained.load()
            if held:
                log.info("mqtt: %d retained messages", held)
            kept = self.kept.load()
            if kept:
                log.info("mqtt: %d persistent sessions", kept)
            self.server.runtime.broker.topic_watchers.append(self.topic_created)
        listener = await loop.create_server(self._new, host, port, backlog=1024, ssl=ssl)
        self._listeners.append(listener)
        host, port = listener.sockets[0].getsockname()[:2]  # (host, port, flow, scope) on IPv6
        address = (str(host), int(port))
        self.addresses.append(address)
        if self.address is None:
            self.address = address
        if self._sweeper is None:
            self._sweeper = loop.create_task(self._sweep(), name="tidings-mqtt-keepalive")
        return address

    def admit_session(self, conn: MqttConnection) -> bool:
        """Count ``conn`` as a session, or False when the limit is reached. A client id
        that is connected already is taking its session over: it is let in."""
        if conn.counted:
            return True
        old = self.by_client.get(conn.client_id)
        if self.sessions >= self.max_sessions and (old is None or old.closed):
            return False
        conn.counted = True
        self.sessions += 1
        return True

    def topic_created(self, spec: TopicSpec) -> None:
        """A new tidings topic: each connected first-level wildcard subscription that covers
        it (and whose user may subscribe to it) reads it from now on."""
        name = spec.name
        for session in list(self.kept.by_client.values()):
            conn = session.conn
            if conn is None or conn.closed or not conn.connected:
                continue  # offline: joined when the session resumes
            for sub in list(session.subs.values()):
                if (
                    sub.filter.spans_topics
                    and name not in sub.members
                    and sub.topics([name], conn.user)
                ):
                    session.add_topic(sub, name)

    def new_connection(self) -> MqttConnection:
        """A connection for a transport that is not one of the listener's ports (WebSocket)."""
        return self._new()

    def _new(self) -> MqttConnection:
        self._seq += 1
        return MqttConnection(self, f"m{self._instance}-{self._seq}")

    def take_over(self, conn: MqttConnection) -> None:
        """A second connection with a client id ends the first (MQTT 3.1.4-3)."""
        old = self.by_client.get(conn.client_id)
        if old is not None and old is not conn and not old.closed:
            log.info("mqtt client %r reconnected: closing its previous connection", conn.client_id)
            if old.version == m.V5:
                old.send(m.Disconnect(m.SESSION_TAKEN_OVER))
            old.close()
        self.by_client[conn.client_id] = conn

    def forget(self, conn: MqttConnection) -> None:
        self.connections.discard(conn)
        if conn.counted:
            conn.counted = False
            self.sessions -= 1
        if self.by_client.get(conn.client_id) is conn:
            del self.by_client[conn.client_id]

    async def _sweep(self) -> None:
        timeout = self.server.config.handshake_timeout
        while True:
            await asyncio.sleep(SWEEP)
            now = time.monotonic()
            for conn in list(self.connections):
                if not conn.connected and not conn.authenticating and now - conn.opened > timeout:
                    log.warning(
                        "mqtt %s (%s): no CONNECT within %.0fs: closing",
                        conn.id,
                        conn.peer,
                        timeout,
                    )
                    conn.transport.abort() if conn.transport else None
                elif (
                    conn.keep_alive
                    and now - conn.last_received > KEEP_ALIVE_FACTOR * conn.keep_alive
                ):
                    silent = now - conn.last_received
                    log.info(
                        "mqtt %s (%s): silent for %.1fs (keep-alive %ds): closing",
                        conn.id, conn.peer, silent, conn.keep_alive,
                    )  # fmt: skip
                    conn.refuse(m.KEEP_ALIVE_TIMEOUT, "keep-alive timeout")

    async def stop(self) -> None:
        watchers = self.server.runtime.broker.topic_watchers
        if self.topic_created in watchers:
            watchers.remove(self.topic_created)
        for listener in self._listeners:
            listener.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in list(self.connections):
            if conn.connected and conn.version == m.V5:
                conn.send(m.Disconnect(m.SERVER_SHUTTING_DOWN))
            conn.will = None
            conn.close()
            conn.closed = True
            self.forget(conn)
        self.kept.stop()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=2.0)


def _host_port(address: str) -> tuple[str, int] | None:
    if address.strip().lower() == "off":
        return None
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


async def start_mqtt(server: BrokerServer) -> MqttListener | None:
    """Start the MQTT ports of the server's config (``--mqtt``, ``--mqtt-tls``; None when
    both are off). The listener is also ``server.mqtt``, for the HTTP app's WebSocket path."""
    config = server.config
    plain, tls = _host_port(config.mqtt), _host_port(config.mqtt_tls)
    if plain is None and tls is None:
        return None
    listener = MqttListener(server)
    try:
        if plain is not None:
            bound = await listener.start(*plain)
            log.info("MQTT 3.1.1 and 5.0 listening on mqtt://%s:%d", *bound)
        if tls is not None:
            bound = await listener.start(*tls, ssl=server.ssl)
            log.info("MQTT 3.1.1 and 5.0 listening on mqtts://%s:%d", *bound)
    except BaseException:
        await listener.stop()
        raise
    server.mqtt = listener
    return listener
