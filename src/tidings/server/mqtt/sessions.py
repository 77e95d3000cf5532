"""Persistent MQTT sessions (3.1.1 §3.1.2.4 Clean Session, 5.0 §3.1.2.4 Clean Start and
§3.1.2.11.2 Session Expiry Interval): which session a CONNECT gets, what survives the
connection and the broker, and when a session that nobody resumes ends.

A session is persistent when its expiry is above 0: a 3.1.1 CONNECT with clean session 0 (no
expiry), a v5 CONNECT with a Session Expiry Interval (0xFFFFFFFF: no expiry; a DISCONNECT may
change it, §3.14.2.2.2). Clean session / clean start 1 ends the client's earlier session.
When its connection ends a persistent session stays (``Session.detach``): the consumer groups
of its subscriptions keep their place and their un-acknowledged messages, so what is
published meanwhile waits in the broker's log, and the next connection with clean start 0
resumes it (CONNACK session present 1, ``Session.attach``). An offline session past its
expiry ends: its private groups are deleted.

Durable: each change of a persistent session (connect, subscriptions, disconnect, end) is a
record in the internal topic ``_mqtt.sessions`` (key: client id; an empty body ends it),
committed before the SUBACK, compacted as ``compaction`` says; at start the broker reads it,
and the groups, which are durable in the broker's store, hold the messages. Private groups
(``mqtt.*``) of sessions that no record names (left by a crash) are deleted then. Not durable:
QoS 2 deliveries between the client's PUBREC and PUBCOMP (settled in their groups; the PUBREL
is not sent again after a restart), the packet ids of unacknowledged deliveries (they come
again with new ones), and the QoS 2 packet ids received and not released (``exactly_once``
covers those).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import msgspec

from ...errors import TidingsError
from ...model import Outgoing, TopicSpec
from . import codec as m
from .compaction import Compactor
from .mapping import INTERNAL_PREFIX, parse_filter
from .session import PRIVATE_GROUP, Session
from .subscription import Subscription

if TYPE_CHECKING:
    from ..app import BrokerServer
    from .listener import MqttConnection

log = logging.getLogger("tidings.server.mqtt")

SESSIONS_TOPIC = INTERNAL_PREFIX + "sessions"
NEVER = 0xFFFFFFFF  # a Session Expiry Interval that does not expire (§3.1.2.11.2)
SWEEP = 1.0  # seconds between expiry checks
READ_BATCH = 1000


class SubscriptionRecord(msgspec.Struct, array_like=True):
    filter: str
    qos: int
    group: str
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0
    identifier: int = 0


class SessionRecord(msgspec.Struct):
    version: int
    expiry: int
    subs: list[SubscriptionRecord]
    offline_since: float | None = None
    user: str = ""


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(SessionRecord).decode


class Sessions:
    """The sessions of the MQTT port, by client id (online and offline)."""

    def __init__(self, server: BrokerServer) -> None:
        self.server = server
        self.broker = server.runtime.broker
        self.by_client: dict[str, Session] = {}
        self._sweeper: asyncio.Task[None] | None = None
        # client id -> the timer of a delayed will and what publishes it now
        self.wills: dict[str, tuple[asyncio.TimerHandle, Callable[[], None]]] = {}
        self.compactor = Compactor(server, SESSIONS_TOPIC)

    # -- start and stop ------------------------------------------------------------------------

    def load(self) -> int:
        """Read the persistent sessions back; delete the private groups none of them has.
        Returns how many there are."""
        broker = self.broker
        broker.create_topic(TopicSpec(name=SESSIONS_TOPIC, dedup_window=0), exist_ok=True)
        store = broker.store
        last: dict[str, bytes] = {}
        offset, end = store.bounds(SESSIONS_TOPIC, 0)
        self.compactor.loaded(end - offset)
        while offset < end:
            records = store.read(SESSIONS_TOPIC, 0, offset, READ_BATCH)
            if not records:
                break
            for record in records:
                if record.key is not None:
                    last[record.key] = record.body
            offset = records[-1].offset + 1
        now = time.time()
        for client_id, body in last.items():
            if not body:
                continue
            try:
                stored = _decode(body)
                session = self._restore(client_id, stored, now)
            except (msgspec.DecodeError, m.MalformedPacket) as exc:
                log.warning("mqtt: the stored session of %r is unreadable: %s", client_id, exc)
                continue
            self.by_client[client_id] = session
        self._drop_orphan_groups()
        self._sweeper = asyncio.get_running_loop().create_task(
            self._sweep(), name="tidings-mqtt-sessions"
        )
        return len(self.by_client)

    def _restore(self, client_id: str, record: SessionRecord, now: float) -> Session:
        session = Session(None, self.broker, client_id)
        session.version = record.version
        session.expiry = record.expiry
        session.offline_since = record.offline_since or now
        session.user_name = record.user
        session.stored = True
        for r in record.subs:
            options = m.Subscription(
                r.filter, r.qos, r.no_local, r.retain_as_published, r.retain_handling
            )
            session.subs[r.filter] = Subscription(
                session, parse_filter(r.filter), options, r.qos, r.group, r.identifier
            )
        return session

    def _drop_orphan_groups(self) -> None:
        kept = {  # a private group's name is its own (on each topic of a wildcard)
            sub.group for session in self.by_client.values() for sub in session.subs.values()
        }
        for topic in self.broker.list_topics():
            for group in self.broker.list_groups(topic.name):
                if group.name.startswith(PRIVATE_GROUP) and group.name not in kept:
                    with contextlib.suppress(TidingsError):
                        self.broker.delete_group(topic.name, group.name)

    def stop(self) -> None:
        """The broker stops: connections end, persistent sessions stay in the store."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for timer, _ in self.wills.values():  # no wills at shutdown (as for connections)
            timer.cancel()
        self.wills.clear()
        for session in list(self.by_client.values()):
            if session.persistent:
                session.detach()
            else:
                session.release()
        self.by_client.clear()

    # -- connections ---------------------------------------------------------------------------

    def open(
        self, conn: MqttConnection, packet: m.Connect
    ) -> tuple[Session, bool, Awaitable[None] | None]:
        """The session of an accepted CONNECT, whether it was present (CONNACK), and the
        write of its record the CONNACK waits for (None: nothing to write)."""
        client_id = conn.client_id
        if conn.version == m.V5:
            expiry = int(packet.properties.get("session_expiry_interval", 0))
        else:
            expiry = 0 if packet.clean_start else NEVER
        old = self.by_client.pop(client_id, None)
        if old is not None and old.conn is not None and not old.conn.closed:
            old.detach()  # taken over: its connection is closing
        saving: Awaitable[None] | None = None
        if old is not None and (packet.clean_start or not old.persistent):
            old.release()  # clean start: the earlier session ends (§3.1.2.4)
            if old.stored and expiry == 0:
                saving = self.forget(old)
            old = None
        present = old is not None
        will = self.wills.pop(client_id, None)
        if will is not None:  # §3.1.3.2.2: not sent if the session resumes in time
            timer, publish_now = will
            timer.cancel()
            if not present:  # the session ended: now
                publish_now()
        unchanged = old is not None and old.stored and old.expiry == expiry
        session = old if old is not None else Session(conn, self.broker, client_id)
        session.conn = conn
        session.user_name = conn.user.name if conn.user is not None else ""
        session.version = conn.version
        session.receive_maximum = conn.session.receive_maximum
        session.expiry = expiry
        self.by_client[client_id] = session
        if session.persistent and not unchanged:
            saving = self.save(session)
        return session, present, saving

    def owner(self, client_id: str) -> str | None:
        """The user name of the session of ``client_id`` (None: there is none). Only that
        user may take it over, resume or end it: its subscriptions were checked for them."""
        session = self.by_client.get(client_id)
        return session.user_name if session is not None else None

    def closed(self, conn: MqttConnection) -> None:
        """``conn`` ended: its session stays (persistent) or ends."""
        session = conn.session
        if session.conn is not conn:
            return  # taken over, or never past CONNECT
        if self.by_client.get(session.client_id) is not session:
            session.release()
            return
        if session.persistent:
            session.detach()
            session.offline_since = time.time()
            conn.spawn(self.save(session))
            return
        session.release()
        del self.by_client[session.client_id]
        if session.stored:  # it was persistent until its DISCONNECT said otherwise
            conn.spawn(self.forget(session))

    def delay_will(
        self, client_id: str, delay: float, publish: Callable[[m.Will], None], will: m.Will
    ) -> None:
        def now() -> None:
            self.wills.pop(client_id, None)
            publish(will)

        earlier = self.wills.pop(client_id, None)
        if earlier is not None:
            earlier[0].cancel()
        timer = asyncio.get_running_loop().call_later(delay, now)
        self.wills[client_id] = (timer, lambda: publish(will))

    def on_disconnect(self, conn: MqttConnection, packet: m.Disconnect) -> None:
        """v5 DISCONNECT may set the Session Expiry Interval, not from 0 (§3.14.2.2.2)."""
        expiry = packet.properties.get("session_expiry_interval")
        if expiry is None:
            return
        session = conn.session
        if session.expiry == 0 and expiry:
            raise m.MalformedPacket(
                "DISCONNECT may not set a session expiry interval when CONNECT had 0",
                m.PROTOCOL_ERROR,
            )
        session.expiry = int(expiry)

    # -- the durable records -------------------------------------------------------------------

    async def save(self, session: Session) -> None:
        session.stored = True
        await self._append(session.client_id, _encode(self._record(session)))

    @staticmethod
    def _record(session: Session) -> SessionRecord:
        subs = [
            SubscriptionRecord(
                s.filter.text, s.qos, s.group, s.options.no_local,
                s.options.retain_as_published, s.options.retain_handling, s.identifier,
            )
            for s in session.subs.values()
        ]  # fmt: skip
        return SessionRecord(
            session.version, session.expiry, subs, session.offline_since, session.user_name
        )

    async def forget(self, session: Session) -> None:
        session.stored = False
        await self._append(session.client_id, b"")

    async def _append(self, client_id: str, body: bytes) -> None:
        try:
            await self.server.runtime.publish(
                SESSIONS_TOPIC, [Outgoing(body, key=client_id)], "mqtt sessions"
            )
        except TidingsError as exc:
            log.warning("mqtt: the session of %r was not stored: %s", client_id, exc)
            return
        self.compactor.appended()
        stored = [s for s in self.by_client.values() if s.stored]
        self.compactor.maybe(len(stored), self._snapshot)

    def _snapshot(self) -> list[Outgoing]:
        """The stored sessions as records again (for ``compaction``): a record is written
        from memory, so memory is never behind the log."""
        return [
            Outgoing(_encode(self._record(s)), key=client_id)
            for client_id, s in self.by_client.items()
            if s.stored
        ]

    # -- expiry --------------------------------------------------------------------------------

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP)
            try:
                await self.expire(time.time())
            except Exception:  # a bug here must not end the expiry of every session
                log.exception("mqtt: session expiry failed")

    async def expire(self, now: float) -> None:
        for client_id, session in list(self.by_client.items()):
            since = session.offline_since
            if since is None or session.expiry >= NEVER or now - since < session.expiry:
                continue
            log.info("mqtt: the session of %r expired", client_id)
            del self.by_client[client_id]
            session.release()
            await self.forget(session)
