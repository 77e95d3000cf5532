"""`nats://`: the tidings transport on NATS JetStream.

``NatsTransport("nats://host:4222")`` (several servers: ``nats://h1:4222,h2:4222``; credentials
as ``nats://user:password@host:4222``). The mapping of topics, partitions, offsets and groups
onto streams, subjects and consumers is declared in :mod:`.naming`; what JetStream cannot do
exactly as the built-in broker is listed in docs/transports.md and left out of
``capabilities``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from urllib.parse import urlsplit

import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext, api

from ...errors import (
    AlreadyExists,
    BadRequest,
    Closed,
    MessageTooLarge,
    NotFound,
    TransportUnavailable,
)
from ...model import DeadLetter, GroupInfo, GroupSpec, Outgoing, Receipt, TopicInfo, TopicSpec
from ...partitioning import RoundRobin, partition_for
from ..base import (
    ALL_CAPABILITIES,
    CAP_KEY_ORDERED,
    CAP_PREFETCH_BYTES,
    CAP_REPLICAS,
    SubscribeOptions,
    Transport,
    TransportSubscription,
)
from ..capabilities import require_group, require_topic
from . import consumers, redrive, streams
from .codec import stored_subject, wire_headers
from .errors import connect_error, translated
from .membership import RESET
from .naming import (
    H_ID,
    STATE_STREAM,
    notify_subject,
    partition_of,
    stream_name,
    subject,
    topic_holders_subject,
    topic_members_subject,
)
from .ordered import OrderedSubscription
from .pipeline import Pipeline, empty, pub_ack
from .replies import ReplyTopics
from .shared import SharedSubscription
from .state import StateStore
from .subscription import NatsSubscription

log = logging.getLogger("tidings.transports.nats")


def servers_of(url: str) -> list[str]:
    """``nats://a:1,b:2`` (or ``nats://a:1,nats://b:2``) as nats-py's server list."""
    rest = url.split("://", 1)[1] if "://" in url else url
    out = []
    for part in rest.split(","):
        part = part.strip().rstrip("/")
        if part.startswith("nats://"):
            part = part[len("nats://") :]
        if part:
            out.append("nats://" + part)
    if not out:
        raise BadRequest(f"no server in the URL {url!r}: use nats://host:4222")
    return out


class NatsTransport(Transport):
    scheme = "nats"
    capabilities = (ALL_CAPABILITIES - {CAP_KEY_ORDERED, CAP_PREFETCH_BYTES}) | {CAP_REPLICAS}

    def __init__(
        self,
        url: str = "nats://127.0.0.1:4222",
        *,
        name: str | None = None,
        connect_timeout: float = 5.0,
        request_timeout: float = 5.0,
        publish_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self._servers = servers_of(url)
        self._name = name
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._publish_timeout = publish_timeout
        self._nc: Client | None = None
        self._closing = False  # close() runs: a disconnect then is no news
        self._js: JetStreamContext | None = None
        self._state: StateStore | None = None
        self._publisher: Pipeline[api.PubAck] | None = None
        self._acks: Pipeline[None] | None = None
        self._specs: dict[str, TopicSpec] = {}
        self._subs: set[NatsSubscription] = set()
        self.replies = ReplyTopics(self)
        self._rr = RoundRobin()

    # ------------------------------------------------------------------ connection
    @property
    def nc(self) -> Client:
        if self._nc is None or self._nc.is_closed:
            raise Closed("the nats:// transport is not connected: call connect() first")
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        self.nc  # noqa: B018 - raises Closed when not connected
        assert self._js is not None
        return self._js

    @property
    def state(self) -> StateStore:
        self.nc  # noqa: B018
        assert self._state is not None
        return self._state

    @property
    def publisher(self) -> Pipeline[api.PubAck]:
        self.nc  # noqa: B018
        assert self._publisher is not None
        return self._publisher

    @property
    def acks(self) -> Pipeline[None]:
        self.nc  # noqa: B018
        assert self._acks is not None
        return self._acks

    async def connect(self) -> None:
        first_errors: list[Exception] = []  # the first connect says them in its error

        async def on_error(exc: Exception) -> None:
            if self._nc is None:
                first_errors.append(exc)
                return
            # Connection errors repeat every reconnect attempt: keep them out of the warnings.
            level = logging.DEBUG if isinstance(exc, OSError | EOFError) else logging.WARNING
            log.log(level, "nats: %s", exc)

        async def on_disconnect() -> None:
            if self._closing or self._nc is None:  # our own close(), or a failed first connect
                log.debug("nats: disconnected from %s", self.url)
                return
            log.warning("nats: disconnected from %s; reconnecting", self.url)

        async def on_reconnect() -> None:
            log.warning("nats: reconnected to %s", self._nc and self._nc.connected_url)

        self._closing = False
        self._nc = None
        several = len(self._servers) > 1
        try:
            self._nc = await nats.connect(
                servers=self._servers,
                name=self._name,
                connect_timeout=self._connect_timeout,
                # The first connect fails fast: nats-py tries a refused server twice at least
                # (max_reconnect_attempts=0 would mean forever), 50 ms apart, and a server
                # that answers wrongly once (several servers: each twice).
                allow_reconnect=several,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.05,
                error_cb=on_error,
                disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnect,
            )
        except Exception as exc:
            cause = exc
            if isinstance(exc, nats.errors.NoServersError) and first_errors:
                cause = first_errors[-1]
            raise connect_error(cause, self._addresses(), self._connect_timeout) from exc
        # ... and later reconnects never give up
        self._nc.options["allow_reconnect"] = True
        self._nc.options["max_reconnect_attempts"] = -1
        self._nc.options["reconnect_time_wait"] = 0.5
        self._js = self._nc.jetstream(timeout=self._request_timeout)
        self._state = StateStore(self._nc, self._js)
        self._publisher = Pipeline(self._nc, pub_ack)
        self._acks = Pipeline(self._nc, empty)
        await self._publisher.start()
        await self._acks.start()
        try:
            await self._state.ensure()
        except TransportUnavailable:
            self._closing = True
            await self._nc.close()
            raise

    async def close(self) -> None:
        """Close every subscription, delete this connection's reply topics, disconnect.
        Safe to call again, and after the connection was lost (background tasks stop)."""
        if self._nc is None:
            return
        self._closing = True
        await asyncio.gather(*(sub.close() for sub in list(self._subs)), return_exceptions=True)
        await self.replies.close()  # deleting its topics fails quietly when disconnected
        if not self._nc.is_closed:
            with contextlib.suppress(Exception):
                await self._nc.flush(timeout=2)
            await self._nc.close()

    def _addresses(self) -> str:
        """host:port of each server, for messages (never the credentials)."""
        return ",".join(urlsplit(url).netloc.rsplit("@", 1)[-1] for url in self._servers)

    def forget(self, sub: NatsSubscription) -> None:
        self._subs.discard(sub)

    # ------------------------------------------------------------------ topics
    async def create_topic(
        self, spec: TopicSpec, *, exist_ok: bool = True, given: Sequence[str] | None = None
    ) -> TopicSpec:
        # ``given`` is checked above the engine (the client compares the settings it gave)
        spec = spec.validate()
        require_topic(self, spec)
        if spec.replicas < 1:
            raise BadRequest("replicas must be >= 1")
        with translated(f"create topic {spec.name!r}"):
            try:
                existing = streams.spec_of(await self.js.stream_info(stream_name(spec.name)))
            except nats.js.errors.NotFoundError:
                existing = None
            if existing is None:
                try:
                    info = await self.js.add_stream(streams.stream_config(spec))
                    created = streams.spec_of(info) or spec
                    if spec.retention == "work-queue":
                        await consumers.hold_work_queue(self.js, created)
                    self._specs[spec.name] = created
                    return created
                except nats.js.errors.APIError as exc:
                    if exc.err_code != 10058:  # not "created meanwhile by someone else"
                        raise
                    existing = await self._spec(spec.name, fresh=True)
        if not exist_ok:
            raise AlreadyExists(f"topic {spec.name!r} already exists")
        self._specs[spec.name] = existing
        return existing

    async def ensure_topic(self, spec: TopicSpec) -> TopicSpec:
        if spec.name in self._specs:
            return self._specs[spec.name]
        return await self.create_topic(spec, exist_ok=True)

    async def delete_topic(self, name: str) -> None:
        self._specs.pop(name, None)
        with translated(f"delete topic {name!r}"):
            try:
                await self.js.delete_stream(stream_name(name))
            except nats.js.errors.NotFoundError:
                raise NotFound(f"topic {name!r} does not exist") from None
            with contextlib.suppress(Exception):
                await self.js.purge_stream(STATE_STREAM, subject=topic_members_subject(name))
                await self.js.purge_stream(STATE_STREAM, subject=topic_holders_subject(name))

    async def list_topics(self) -> list[TopicSpec]:
        return await streams.list_specs(self.js)

    async def _spec(self, name: str, fresh: bool = False) -> TopicSpec:
        if not fresh and name in self._specs:
            return self._specs[name]
        with translated(f"topic {name!r}"):
            try:
                info = await self.js.stream_info(stream_name(name))
            except nats.js.errors.NotFoundError:
                raise NotFound(f"topic {name!r} does not exist: create it first") from None
        spec = streams.spec_of(info)
        if spec is None:
            raise NotFound(f"topic {name!r} does not exist (its stream was not made by tidings)")
        self._specs[name] = spec
        return spec

    async def topic_info(self, name: str) -> TopicInfo:
        await self._acks_applied()
        spec = await self._spec(name, fresh=True)
        with translated(f"topic {name!r}"):
            info = await self.js.stream_info(stream_name(name))
        out = streams.topic_info(spec, info)
        out.partitions = await streams.partition_infos(self.js, spec)
        groups = await consumers.list_groups(self.js, spec)
        out.groups = list(
            await asyncio.gather(
                *(
                    consumers.group_info(self.js, self.state, spec, g, infos)
                    for g, infos in groups.values()
                )
            )
        )
        return out

    # ------------------------------------------------------------------ publishing
    async def publish(self, topic: str, messages: Sequence[Outgoing]) -> list[Receipt]:
        if not messages:
            return []
        spec = await self._spec(topic)
        dedup = spec.dedup_window > 0
        stream = stream_name(topic)
        sent: list[tuple[int, str, asyncio.Future[api.PubAck]]] = []
        try:
            with translated(f"publish to topic {topic!r}"):
                for m in messages:
                    if len(m.body) > spec.max_message_size:
                        raise MessageTooLarge(
                            f"a message of {len(m.body)} bytes exceeds the max_message_size of "
                            f"topic {topic!r} ({spec.max_message_size} bytes): send less or "
                            "raise the limit"
                        )
                    p = (
                        partition_for(m.key, spec.partitions)
                        if m.key is not None
                        else self._rr.next(spec.partitions)
                    )
                    mid, headers = wire_headers(m, dedup)
                    future = await self.publisher.send(subject(topic, p), m.body, headers)
                    sent.append((p, mid, future))
                acks = await asyncio.wait_for(
                    asyncio.gather(*(f for _, _, f in sent)), self._publish_timeout
                )
                receipts = []
                for (p, mid, _), ack in zip(sent, acks, strict=True):
                    if ack.duplicate:  # the original may sit in another partition
                        p, mid = await self._original(stream, ack.seq, p, mid)
                    receipts.append(Receipt(topic, p, ack.seq - 1, mid, bool(ack.duplicate)))
                return receipts
        except TransportUnavailable:
            self._specs.pop(topic, None)  # the stream may be gone: look again next time
            raise
        finally:
            for _, _, future in sent:
                if not future.done():
                    future.cancel()

    async def _original(self, stream: str, seq: int, p: int, mid: str) -> tuple[int, str]:
        """(partition, id) of the message stored at ``seq``."""
        try:
            raw = await self.js.get_msg(stream, seq=seq)
        except nats.js.errors.NotFoundError:  # already gone (retention)
            return p, mid
        return partition_of(stored_subject(raw)), (raw.headers or {}).get(H_ID) or mid

    # ------------------------------------------------------------------ groups
    async def subscribe(
        self, spec: GroupSpec, *, prefetch: int = 100, options: SubscribeOptions | None = None
    ) -> TransportSubscription:
        spec = spec.validate()
        require_group(self, spec)
        if options is not None and options.prefetch_bytes:
            self.require(CAP_PREFETCH_BYTES, f"prefetch_bytes for group {spec.name!r}")
        topic = await self._spec(spec.topic)
        stored = await consumers.ensure_group(self.js, topic, spec)
        cls = OrderedSubscription if stored.mode == "ordered" else SharedSubscription
        sub = cls(self, stored, topic, prefetch, options)
        await sub.start()
        self._subs.add(sub)
        return sub

    async def _group(
        self, topic: str, group: str
    ) -> tuple[TopicSpec, GroupSpec, list[api.ConsumerInfo]]:
        spec = await self._spec(topic)
        found = await consumers.find_group(self.js, spec, group)
        if found is None:
            raise NotFound(f"group {group!r} of topic {topic!r} does not exist")
        return spec, found[0], found[1]

    # ------------------------------------------------------------------ dead letters
    async def dead_letters(self, topic: str, group: str, limit: int = 100) -> list[DeadLetter]:
        await self._acks_applied()
        return await redrive.dead_letters(self, topic, group, limit)

    async def redrive(
        self, topic: str, group: str, ids: Sequence[str] | None = None, limit: int | None = None
    ) -> list[str]:
        await self._acks_applied()  # a reject made just before has reached the stream
        return await redrive.redrive(self, topic, group, ids, limit)

    async def discard_dead_letters(
        self, topic: str, group: str, ids: Sequence[str] | None = None, limit: int | None = None
    ) -> list[str]:
        return await redrive.discard(self, topic, group, ids, limit)

    async def _acks_applied(self) -> None:
        """Let this connection's acknowledgements land before reading stats."""
        await asyncio.gather(*(sub.acks_applied() for sub in self._subs))

    async def group_info(self, topic: str, group: str) -> GroupInfo:
        await self._acks_applied()
        spec, gspec, infos = await self._group(topic, group)
        return await consumers.group_info(self.js, self.state, spec, gspec, infos)

    async def delete_group(self, topic: str, group: str) -> None:
        spec, gspec, _ = await self._group(topic, group)
        await consumers.delete_consumers(self.js, spec, gspec)
        with contextlib.suppress(Exception):
            await self.state.forget_group(topic, group)

    async def reset_group(
        self, topic: str, group: str, start: str = "earliest", start_value: float | None = None
    ) -> None:
        spec, gspec, _ = await self._group(topic, group)
        new = msgspec.structs.replace(gspec, start=start, start_value=start_value).validate()
        await consumers.reset(self.js, spec, new)
        for sub in self._subs:
            if sub.spec.topic == topic and sub.spec.name == group:
                sub.flush()
        with translated(f"reset group {group!r}"):
            await self.nc.publish(notify_subject(topic, group), RESET)

    # ------------------------------------------------------------------ request/reply
    async def create_reply_topic(self) -> str:
        """A memory stream private to this connection, deleted by :meth:`close` (see
        :mod:`.replies` for the clean-up after a crash)."""
        return await self.replies.create()
