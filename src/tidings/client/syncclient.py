"""The blocking twin: :class:`Client` has :class:`AsyncClient`'s method names and runs them on
one background event-loop thread (as httpx's Client twins its AsyncClient). The logic lives
only in :class:`AsyncClient`; a test keeps the two surfaces identical."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterable, Iterator
from typing import Any

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
from ..trace import Trace
from ..transports.base import Transport
from ..transports.leasing import DEFAULT_MAX_LEASE_EXTENSION
from .asyncclient import AsyncClient
from .checks import Body
from .portal import LoopThread
from .positions import StartPosition
from .registry import Instance, ServiceView
from .subscription import Subscription


class SyncMessage:
    """A received message whose ack/nack/extend/reject block. Other attributes are the
    underlying :class:`tidings.Message`'s (``body``, ``key``, ``headers``, ``id``, ...)."""

    def __init__(self, message: Message, portal: LoopThread) -> None:
        self.message = message
        self._portal = portal

    def __getattr__(self, name: str) -> Any:
        return getattr(self.message, name)

    def ack(self) -> None:
        self._portal.call(self.message.ack())

    def nack(self, delay: float = 0.0, error: str | None = None) -> None:
        self._portal.call(self.message.nack(delay, error))

    def extend(self, seconds: float) -> None:
        self._portal.call(self.message.extend(seconds))

    def reject(self, reason: str = "rejected") -> None:
        self._portal.call(self.message.reject(reason))

    def __repr__(self) -> str:
        return f"Sync{self.message!r}"


def _unwrap(message: Message | SyncMessage) -> Message:
    return message.message if isinstance(message, SyncMessage) else message


class SyncSubscription:
    """The blocking twin of :class:`Subscription`: iterate it with a plain ``for``."""

    def __init__(self, inner: Subscription, portal: LoopThread) -> None:
        self._inner = inner
        self._portal = portal

    @property
    def spec(self) -> GroupSpec:
        return self._inner.spec

    @property
    def topic(self) -> str:
        return self._inner.topic

    @property
    def group(self) -> str:
        return self._inner.group

    @property
    def closed(self) -> bool:
        return self._inner.closed

    def next(self, timeout: float | None = None) -> SyncMessage | None:
        message = self._portal.call(self._inner.next(timeout))
        return None if message is None else SyncMessage(message, self._portal)

    def next_batch(self, max_count: int, timeout: float | None = None) -> list[SyncMessage]:
        batch = self._portal.call(self._inner.next_batch(max_count, timeout))
        return [SyncMessage(m, self._portal) for m in batch]

    def ack_many(self, messages: Iterable[Message | SyncMessage]) -> None:
        self._portal.call(self._inner.ack_many([_unwrap(m) for m in messages]))

    def __iter__(self) -> Iterator[SyncMessage]:
        return self

    def __next__(self) -> SyncMessage:
        try:
            return SyncMessage(self._portal.call(self._inner.__anext__()), self._portal)
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        self._portal.call(self._inner.close())

    def __enter__(self) -> SyncSubscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Client:
    """A blocking client: ``with tidings.connect_sync(url) as client: client.publish(...)``."""

    def __init__(self, url: str | None = None, **options: Any) -> None:
        self._portal = LoopThread()

        async def build() -> AsyncClient:
            return AsyncClient(url, **options)

        try:
            self._async = self._portal.call(build())
        except BaseException:
            self._portal.stop()
            raise
        self.url = self._async.url

    @property
    def transport(self) -> Transport:
        return self._async.transport

    @property
    def capabilities(self) -> frozenset[str]:
        return self._async.capabilities

    def connect(self) -> Client:
        self._portal.call(self._async.connect())
        return self

    def close(self) -> None:
        if self._portal.running:
            try:
                self._portal.call(self._async.close())
            finally:
                self._portal.stop()

    def __enter__(self) -> Client:
        return self.connect()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def create_topic(
        self, name: str, *, partitions: int | None = None, exist_ok: bool = True, **options: Any
    ) -> TopicSpec:
        return self._portal.call(
            self._async.create_topic(name, partitions=partitions, exist_ok=exist_ok, **options)
        )

    def delete_topic(self, name: str) -> None:
        self._portal.call(self._async.delete_topic(name))

    def list_topics(self) -> list[TopicSpec]:
        return self._portal.call(self._async.list_topics())

    def topic_info(self, name: str) -> TopicInfo:
        return self._portal.call(self._async.topic_info(name))

    def publish(
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
        return self._portal.call(
            self._async.publish(
                topic, body, key=key, headers=headers, msg_id=msg_id, ttl=ttl, delay=delay
            )
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
    ) -> concurrent.futures.Future[Receipt]:
        """Queue one message; returns at once a ``concurrent.futures.Future`` of its receipt."""
        return self._portal.submit(
            lambda: self._async.publish_async(
                topic, body, key=key, headers=headers, msg_id=msg_id, ttl=ttl, delay=delay
            )
        )

    def flush(self) -> None:
        self._portal.call(self._async.flush())

    def publish_many(self, topic: str, messages: Iterable[Outgoing]) -> list[Receipt]:
        return self._portal.call(self._async.publish_many(topic, list(messages)))

    def subscribe(
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
    ) -> SyncSubscription:
        sub = self._portal.call(
            self._async.subscribe(
                topic,
                group,
                mode=mode,
                lease=lease,
                max_deliveries=max_deliveries,
                prefetch=prefetch,
                start=start,
                key_ordered=key_ordered,
                auto_ack=auto_ack,
                dead_letter_topic=dead_letter_topic,
                dead_letter_expired=dead_letter_expired,
                in_flight_per_partition=in_flight_per_partition,
                session_timeout=session_timeout,
                max_lease_extension=max_lease_extension,
                confirm_acks=confirm_acks,
                prefetch_bytes=prefetch_bytes,
            )
        )
        return SyncSubscription(sub, self._portal)

    def group_info(self, topic: str, group: str) -> GroupInfo:
        return self._portal.call(self._async.group_info(topic, group))

    def trace(
        self,
        message: str | None = None,
        *,
        conversation: str | None = None,
        topic: str | None = None,
        after: int = 0,
        limit: int = 1000,
    ) -> Trace:
        return self._portal.call(
            self._async.trace(
                message, conversation=conversation, topic=topic, after=after, limit=limit
            )
        )

    def delete_group(self, topic: str, group: str) -> None:
        self._portal.call(self._async.delete_group(topic, group))

    def reset_group(self, topic: str, group: str, start: StartPosition = "earliest") -> None:
        self._portal.call(self._async.reset_group(topic, group, start))

    def dead_letters(self, topic: str, group: str, *, limit: int = 100) -> list[DeadLetter]:
        return self._portal.call(self._async.dead_letters(topic, group, limit=limit))

    def redrive(
        self,
        topic: str,
        group: str,
        ids: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> int:
        return self._portal.call(self._async.redrive(topic, group, ids=ids, limit=limit))

    def redrive_ids(
        self,
        topic: str,
        group: str,
        ids: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> list[str]:
        return self._portal.call(self._async.redrive_ids(topic, group, ids=ids, limit=limit))

    def discard_dead_letters(
        self,
        topic: str,
        group: str,
        ids: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> int:
        return self._portal.call(
            self._async.discard_dead_letters(topic, group, ids=ids, limit=limit)
        )

    def request(
        self,
        topic: str,
        body: Body,
        *,
        timeout: float | None = None,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        policy: Pipeline | str | None = None,
    ) -> SyncMessage:
        reply = self._portal.call(
            self._async.request(
                topic, body, timeout=timeout, key=key, headers=headers, policy=policy
            )
        )
        return SyncMessage(reply, self._portal)

    def scatter(
        self,
        topic: str,
        body: Body,
        *,
        timeout: float,
        max_replies: int | None = None,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        policy: Pipeline | str | None = None,
    ) -> list[SyncMessage]:
        replies = self._portal.call(
            self._async.scatter(
                topic,
                body,
                timeout=timeout,
                max_replies=max_replies,
                key=key,
                headers=headers,
                policy=policy,
            )
        )
        return [SyncMessage(m, self._portal) for m in replies]

    def reply(
        self,
        request: Message | SyncMessage,
        body: Body,
        *,
        headers: dict[str, str] | None = None,
    ) -> Receipt:
        return self._portal.call(self._async.reply(_unwrap(request), body, headers=headers))

    def reply_error(
        self,
        request: Message | SyncMessage,
        error: BaseException | str,
        *,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Receipt:
        return self._portal.call(
            self._async.reply_error(_unwrap(request), error, error_type=error_type, headers=headers)
        )

    def services(self, *, timeout: float = 0.5) -> list[ServiceView]:
        return self._portal.call(self._async.services(timeout=timeout))

    def discover(
        self, name: str, *, version: str | None = None, timeout: float = 0.5
    ) -> list[Instance]:
        return self._portal.call(self._async.discover(name, version=version, timeout=timeout))

    def __repr__(self) -> str:
        return f"Client({self.url!r})"


def connect_sync(url: str | None = None, **options: Any) -> Client:
    """A connected blocking :class:`Client` (use it as ``with``; ``close()`` otherwise)."""
    client = Client(url, **options)
    try:
        return client.connect()
    except BaseException:
        client.close()
        raise
