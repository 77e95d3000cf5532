"""AsyncClient: the one implementation of the client API over any :class:`Transport`.

``tidings.connect(url)`` builds one for the transport the URL names (``memory://``,
``tidings://``, ``nats://``; default ``$TIDINGS_URL``). The sync :class:`tidings.Client` runs
these same methods on a background event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Iterable
from typing import Any

import msgspec

from ..broker.redeclaration import check_redeclaration
from ..errors import BadRequest, Closed
from ..ids import default_snowflake
from ..model import (
    DEFAULT_LEASE,
    DEFAULT_MAX_DELIVERIES,
    DEFAULT_SESSION_TIMEOUT,
    DeadLetter,
    GroupInfo,
    GroupSpec,
    Message,
    Mode,
    Outgoing,
    Receipt,
    TopicInfo,
    TopicSpec,
)
from ..resilience.pipeline import Pipeline
from ..resilience.registry import policies
from ..trace import Trace
from ..transports import base as caps
from ..transports.base import SubscribeOptions, Transport
from ..transports.capabilities import require_topic
from ..transports.leasing import DEFAULT_MAX_LEASE_EXTENSION
from ..transports.registry import resolve_url, transport_for
from .checks import (
    Body,
    as_bytes,
    check_timing,
    prepare,
)
from .pipeline import PublishPipeline
from .positions import StartPosition, start_position
from .registry import Instance, Registry, ServiceView
from .replies import error_headers, reply_message
from .requester import Requester
from .retries import with_retries
from .subscription import Subscription


class AsyncClient:
    """A connection to a broker through one transport. Use it as ``async with`` (or ``await``
    it) to connect; every method also connects on first use."""

    def __init__(
        self,
        url: str | None = None,
        *,
        transport: Transport | None = None,
        publish_retries: int = 3,
        retry_backoff: float = 0.05,
        request_timeout: float = 30.0,
        **transport_options: Any,
    ) -> None:
        self.url = resolve_url(url)
        self._transport = (
            transport if transport is not None else transport_for(self.url, **transport_options)
        )
        self.publish_retries = publish_retries
        self.retry_backoff = retry_backoff
        self.request_timeout = request_timeout
        self._connected = False
        self._closed = False
        self._connect_lock = asyncio.Lock()
        self._requester = Requester(self._transport, self._publish_one)
        self._subscriptions: set[Subscription] = set()
        self._pipeline = PublishPipeline(self._send_batch, stable_ids=publish_retries > 0)

    @property
    def transport(self) -> Transport:
        """The engine connection underneath (memory://, tidings://, nats://)."""
        return self._transport

    @property
    def capabilities(self) -> frozenset[str]:
        """What the transport can do (see tidings.transports.base.CAP_*)."""
        return self._transport.capabilities

    # lifecycle
    async def connect(self) -> AsyncClient:
        if self._closed:
            raise Closed("this client is closed: connect a new one")
        async with self._connect_lock:
            if not self._connected:
                await self.transport.connect()
                self._connected = True
        return self

    async def close(self) -> None:
        """Close subscriptions, the reply topic and the connection. Safe to call twice."""
        if self._closed:
            return
        await self._pipeline.flush()  # queued publishes get their answers first
        self._closed = True
        self._pipeline.fail_all(Closed("the client closed before the message was published"))
        for sub in list(self._subscriptions):
            await sub.close()
        await self._requester.close()
        if self._connected:
            await self.transport.close()

    async def __aenter__(self) -> AsyncClient:
        return await self.connect()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __await__(self) -> Generator[Any, None, AsyncClient]:
        return self.connect().__await__()

    async def _ready(self) -> None:
        if not self._connected:
            await self.connect()
        elif self._closed:
            raise Closed("this client is closed")

    # topics
    async def create_topic(
        self, name: str, *, partitions: int | None = None, exist_ok: bool = True, **options: Any
    ) -> TopicSpec:
        """Create a topic; ``options`` are :class:`TopicSpec` fields (retention, max_age,
        dedup_window, ...); ``partitions`` is 1 for a new topic unless given. With ``exist_ok``
        an existing topic is returned unchanged if the settings given match it, and refused
        with :class:`~tidings.errors.TopicConflict` if they differ."""
        asked = dict(options) if partitions is None else {"partitions": partitions, **options}
        try:
            spec = TopicSpec(name=name, **asked)
        except TypeError as exc:
            known = ", ".join(f for f in TopicSpec.__struct_fields__ if f != "name")
            raise BadRequest(f"unknown topic option: {exc}; known options: {known}") from None
        spec.validate()
        require_topic(self.transport, spec)  # the transport checks again (once, for others)
        await self._ready()
        created = await self.transport.create_topic(spec, exist_ok=exist_ok, given=list(asked))
        return check_redeclaration(created, asked)  # for transports that do not check

    async def delete_topic(self, name: str) -> None:
        await self._ready()
        await self.transport.delete_topic(name)

    async def list_topics(self) -> list[TopicSpec]:
        await self._ready()
        return await self.transport.list_topics()

    async def topic_info(self, name: str) -> TopicInfo:
        await self._ready()
        return await self.transport.topic_info(name)

    # publishing
    async def publish(
        self,
        topic: str,
        body: Body,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        msg_id: str | None = None,
        ttl: float | None = None,
        delay: float | None = None,
    ) -> Receipt:
        """Publish one message; returns once the broker has it durably. ``msg_id`` is the
        producer id for duplicate detection; ``ttl`` and ``delay`` are seconds. Concurrent
        publishes to one topic travel together in one batch (see :meth:`publish_async`)."""
        if not self._connected or self._closed:
            await self._ready()
        return await self.publish_async(
            topic, body, key=key, headers=headers, msg_id=msg_id, ttl=ttl, delay=delay
        )

    def publish_async(
        self,
        topic: str,
        body: Body,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        msg_id: str | None = None,
        ttl: float | None = None,
        delay: float | None = None,
    ) -> asyncio.Future[Receipt]:
        """Queue one message and return at once a future of its :class:`Receipt`.

        The future resolves once the broker has the message durably (as ``publish``), or
        fails with the broker's error for it. Publishes queued in one event-loop turn, or
        while the previous batch to the topic waits for its confirm, are sent as one batch;
        a producer's publishes to one topic keep their order. Await the futures (or
        :meth:`flush`) now and then: nothing bounds what is queued. Call it from the client's
        event loop (an unconnected client connects before the first batch is sent)."""
        if self._closed:
            raise Closed("this client is closed")
        if type(body) is not bytes:
            body = as_bytes(body)
        if ttl is not None or delay is not None:
            ttl, delay = check_timing(self._transport, ttl, delay)
        out = Outgoing(body, key, {} if headers is None else dict(headers), msg_id, ttl, delay)
        return self._pipeline.submit(topic, out)

    def _submit(self, topic: str, message: Outgoing) -> asyncio.Future[Receipt]:
        """``publish_async`` of an :class:`Outgoing` the caller built and hands over (the
        service framework's path): its body is ``bytes``, its headers a dict of its own that
        the client may keep, its ``ttl`` and ``delay`` None. No second Outgoing, no copy of the
        headers. A ``msg_id`` left None is filled in when the batch is taken
        (:attr:`_assigns_ids`), so the caller sees it once the future is done."""
        if self._closed:
            raise Closed("this client is closed")
        return self._pipeline.submit(topic, message)

    @property
    def _assigns_ids(self) -> bool:
        """Whether a publish without a ``msg_id`` gets one from the process-wide Snowflake
        generator (:func:`~tidings.ids.default_snowflake`) before it is sent (publish retries
        on when the client was made, the default)."""
        return self._pipeline.stable_ids

    async def flush(self) -> None:
        """Wait until every message given to ``publish_async`` so far has its answer."""
        await self._pipeline.flush()

    async def _publish_one(self, topic: str, message: Outgoing) -> Receipt:
        return (await self.publish_many(topic, [message]))[0]

    async def publish_many(self, topic: str, messages: Iterable[Outgoing]) -> list[Receipt]:
        """Publish a batch (one receipt per message, in order): all of it or, on an error,
        none of it."""
        batch = [prepare(self._transport, m) for m in messages]
        if not batch:
            return []
        if self.publish_retries > 0:
            need = [i for i, m in enumerate(batch) if m.msg_id is None]
            if need:
                ids = default_snowflake().next_strs(len(need))
                for i, msg_id in zip(need, ids, strict=True):
                    batch[i] = msgspec.structs.replace(batch[i], msg_id=msg_id)
        await self._ready()
        return await self._send_batch(topic, batch)

    async def _send_batch(self, topic: str, batch: list[Outgoing]) -> list[Receipt]:
        if not self._connected:
            await self._ready()
        if self.publish_retries <= 0:
            return await self._transport.publish(topic, batch)
        return await with_retries(
            lambda: self._transport.publish(topic, batch),
            retries=self.publish_retries,
            backoff=self.retry_backoff,
        )

    # groups
    async def subscribe(
        self,
        topic: str,
        group: str,
        *,
        mode: Mode = "shared",
        lease: float = DEFAULT_LEASE,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        prefetch: int = 100,
        start: StartPosition = "earliest",
        key_ordered: bool = False,
        auto_ack: bool = False,
        dead_letter_topic: str | None = None,
        dead_letter_expired: bool = False,
        in_flight_per_partition: int = 1,
        session_timeout: float = DEFAULT_SESSION_TIMEOUT,
        max_lease_extension: float = DEFAULT_MAX_LEASE_EXTENSION,
        confirm_acks: bool = False,
        prefetch_bytes: int | None = None,
    ) -> Subscription:
        """Join ``group`` on ``topic`` (creating the group if needed) as a new member.

        ``start`` (for a new group): "earliest", "latest", an int offset, or a datetime/float
        timestamp. ``prefetch`` is how many un-settled messages this member may hold;
        ``prefetch_bytes`` (built-in broker) also bounds the bytes of their bodies: the broker
        sends nothing more once they reach it (the message that crosses it is delivered).
        The client extends the ``lease`` of every message it holds (buffered or handed out,
        not settled) for up to ``max_lease_extension`` seconds after arrival (0: never).
        ``confirm_acks``: ``ack()`` waits for the broker's confirmation and raises its refusal;
        by default acks are batched and ``ack()`` returns at once (see docs/client.md)."""
        kind, value = start_position(start)
        spec = GroupSpec(
            topic=topic,
            name=group,
            mode=mode,
            lease=lease,
            max_deliveries=max_deliveries,
            start=kind,
            start_value=value,
            key_ordered=key_ordered,
            auto_ack=auto_ack,
            dead_letter_topic=dead_letter_topic,
            dead_letter_expired=dead_letter_expired,
            in_flight_per_partition=in_flight_per_partition,
            session_timeout=session_timeout,
        ).validate()
        if prefetch < 1:
            raise BadRequest(f"prefetch must be >= 1, got {prefetch}")
        if max_lease_extension < 0:
            raise BadRequest(
                f"max_lease_extension must be >= 0 seconds (0 turns extension off), "
                f"got {max_lease_extension}"
            )
        if prefetch_bytes is not None:
            if not isinstance(prefetch_bytes, int) or prefetch_bytes < 1:
                raise BadRequest(f"prefetch_bytes must be an integer >= 1, got {prefetch_bytes!r}")
            self._transport.require(caps.CAP_PREFETCH_BYTES, "prefetch_bytes")
        options = SubscribeOptions(
            float(max_lease_extension), bool(confirm_acks), prefetch_bytes or 0
        )
        await self._ready()
        sub = Subscription(
            await self.transport.subscribe(spec, prefetch=prefetch, options=options),
            self._subscriptions.discard,
        )
        self._subscriptions.add(sub)
        return sub

    async def group_info(self, topic: str, group: str) -> GroupInfo:
        await self._ready()
        return await self.transport.group_info(topic, group)

    async def trace(
        self,
        message: str | None = None,
        *,
        conversation: str | None = None,
        topic: str | None = None,
        after: int = 0,
        limit: int = 1000,
    ) -> Trace:
        """Ask the broker's message trace (tidings:// with ``--trace``; docs/tracing.md) about
        one ``message`` (broker id or producer msg_id, with its conversation's other messages
        in ``related``), a ``conversation`` (correlation id or W3C trace id), or a ``topic``'s
        events after sequence number ``after`` (``">"``: every topic). Give exactly one."""
        given = [(k, v) for k, v in (("message", message), ("conversation", conversation),
                                     ("topic", topic)) if v is not None]  # fmt: skip
        if len(given) != 1:
            raise BadRequest("trace: give exactly one of message, conversation or topic")
        kind, value = given[0]
        if kind == "topic" and value == ">":
            value = ""
        await self._ready()
        return await self.transport.trace(kind, value, after, limit)

    async def delete_group(self, topic: str, group: str) -> None:
        await self._ready()
        await self.transport.delete_group(topic, group)

    async def reset_group(self, topic: str, group: str, start: StartPosition = "earliest") -> None:
        """Move the group's position (same ``start`` values as ``subscribe``)."""
        kind, value = start_position(start)
        self.transport.require(caps.CAP_GROUP_RESET, "reset_group")
        await self._ready()
        await self.transport.reset_group(topic, group, kind, value)

    # dead letters
    async def dead_letters(self, topic: str, group: str, *, limit: int = 100) -> list[DeadLetter]:
        """The dead letters of ``group`` on ``topic`` that wait, oldest first (at most
        ``limit``): each with its original id, producer id, key, headers and body, and why
        (``reason``, ``deliveries``, ``error``) and when it died. Nothing is consumed."""
        _check_limit(limit)
        await self._ready()
        return await self.transport.dead_letters(topic, group, limit)

    async def redrive(
        self,
        topic: str,
        group: str,
        ids: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> int:
        """Send dead letters of ``group`` back to ``group`` only (all, the ``ids`` given, or
        the oldest ``limit``), under their original message id and headers, as a fresh
        delivery; other groups of the topic do not see them again. Returns how many were
        redriven; an id that does not wait raises NotFound and nothing is redriven."""
        return len(await self.redrive_ids(topic, group, ids=ids, limit=limit))

    async def redrive_ids(
        self,
        topic: str,
        group: str,
        ids: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> list[str]:
        """As :meth:`redrive`, returning the message ids redriven."""
        _check_limit(limit)
        await self._ready()
        return await self.transport.redrive(topic, group, _id_list(ids), limit)

    async def discard_dead_letters(
        self,
        topic: str,
        group: str,
        ids: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> int:
        """Drop dead letters of ``group`` for good (the purge: all, the ``ids`` given, or the
        oldest ``limit``); they are neither listed nor redriven again. Returns how many."""
        _check_limit(limit)
        await self._ready()
        return len(await self.transport.discard_dead_letters(topic, group, _id_list(ids), limit))

    # request/reply
    async def request(
        self,
        topic: str,
        body: Body,
        *,
        timeout: float | None = None,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        policy: Pipeline | str | None = None,
    ) -> Message:
        """Publish a request and wait for its reply. Raises RequestTimeout when no reply comes
        within ``timeout`` seconds and RemoteError when the responder failed. ``policy`` (a
        :class:`~tidings.resilience.Pipeline` or a policy name) runs each try through its
        timeouts, retries, breaker and bulkhead, keyed by ``topic`` (docs/resilience.md)."""
        timeout = self.request_timeout if timeout is None else timeout
        data = as_bytes(body)

        async def once() -> Message:
            await self._ready()
            return await self._requester.request(topic, data, timeout, key, headers)

        pipeline = policies.resolve(policy)
        return await (once() if pipeline is None else pipeline.run(once, callee=topic))

    async def scatter(
        self,
        topic: str,
        body: Body,
        *,
        timeout: float,
        max_replies: int | None = None,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        policy: Pipeline | str | None = None,
    ) -> list[Message]:
        """Publish one request and collect replies until ``timeout`` seconds pass or
        ``max_replies`` arrived. Error replies are logged and left out. ``policy`` as for
        :meth:`request`."""
        data = as_bytes(body)

        async def once() -> list[Message]:
            await self._ready()
            return await self._requester.scatter(topic, data, timeout, max_replies, key, headers)

        pipeline = policies.resolve(policy)
        return await (once() if pipeline is None else pipeline.run(once, callee=topic))

    async def reply(
        self, request: Message, body: Body, *, headers: dict[str, str] | None = None
    ) -> Receipt:
        """Answer ``request`` (a message that carries ``reply-to``)."""
        topic, out = reply_message(request, as_bytes(body), headers)
        return (await self.publish_many(topic, [out]))[0]

    async def reply_error(
        self,
        request: Message,
        error: BaseException | str,
        *,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Receipt:
        """Answer ``request`` with a failure; the requester raises RemoteError(error)."""
        merged = {**(headers or {}), **error_headers(error, error_type)}
        topic, out = reply_message(request, b"", merged)
        return (await self.publish_many(topic, [out]))[0]

    # discovery (docs/discovery.md)
    async def services(self, *, timeout: float = 0.5) -> list[ServiceView]:
        """Every running service with its instances: the live ``$SRV`` answers (within
        ``timeout`` seconds) folded with the broker's registry heartbeats."""
        return await Registry(self, srv_timeout=timeout).services()

    async def discover(
        self, name: str, *, version: str | None = None, timeout: float = 0.5
    ) -> list[Instance]:
        """The live instances of service ``name`` (of major ``version``); NoInstance when
        none runs."""
        return await Registry(self, srv_timeout=timeout).discover(name, version=version)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "connected" if self._connected else "new"
        return f"AsyncClient({self.url!r}, {state})"


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise BadRequest(f"limit must be a whole number >= 1, got {limit!r}")


def _id_list(ids: Iterable[str] | None) -> list[str] | None:
    if ids is None:
        return None
    if isinstance(ids, str):
        raise BadRequest("ids must be a list of message ids, not one string: ids=[...]")
    out = list(ids)
    if not out:
        raise BadRequest("ids is empty: pass None to redrive every dead letter")
    return out


def connect(url: str | None = None, **options: Any) -> AsyncClient:
    """An :class:`AsyncClient` for ``url`` (default ``$TIDINGS_URL``, then
    ``tidings://127.0.0.1:7420``); connect it with ``async with`` or ``await``."""
    return AsyncClient(url, **options)
