"""Subscription: one member of a consumer group, as an async iterator of messages."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..errors import Closed
from ..model import GroupSpec, Message
from ..transports.base import TransportSubscription


class Subscription:
    """Messages of one group member. Iterate it (``async for msg in sub``), settle each message
    with ``ack``/``nack``/``extend``/``reject``, and ``close`` it to leave the group (un-acked
    messages go back to the group)."""

    def __init__(
        self, inner: TransportSubscription, on_close: Callable[[Subscription], None] | None = None
    ) -> None:
        self._inner = inner
        self._on_close = on_close
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def spec(self) -> GroupSpec:
        """The group's settings."""
        return self._inner.spec

    @property
    def topic(self) -> str:
        return self._inner.spec.topic

    @property
    def group(self) -> str:
        return self._inner.spec.name

    async def next(self, timeout: float | None = None) -> Message | None:
        """The next message, or None when ``timeout`` seconds pass first. Raises Closed once
        the subscription is closed."""
        return await self._inner.next(timeout)

    async def next_batch(self, max_count: int, timeout: float | None = None) -> list[Message]:
        """Up to ``max_count`` messages already received (waits up to ``timeout`` for one)."""
        return await self._inner.next_batch(max_count, timeout)

    async def ack_many(self, messages: Iterable[Message]) -> None:
        """Ack many messages at once (one frame on ``tidings://``). With ``confirm_acks`` it
        waits for the broker and raises the first refusal after all were applied."""
        batch = [m for m in messages if not m.settled]
        if batch:
            await self._inner.ack_many(batch)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Message:
        if self._closed:
            raise StopAsyncIteration
        try:
            message = await self._inner.next()
        except Closed:
            raise StopAsyncIteration from None
        if message is None:  # only after close: next() without timeout waits for a message
            raise StopAsyncIteration
        return message

    async def close(self) -> None:
        """Leave the group. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._inner.close()
        finally:
            if self._on_close is not None:
                self._on_close(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"Subscription(topic={self.topic!r}, group={self.group!r}, mode={self.spec.mode!r})"
