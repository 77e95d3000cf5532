"""`memory://` — the real broker core in-process, over a MemoryStore.

Leases expire, messages dead-letter and ordered groups rebalance exactly as on the built-in
broker, because it *is* the built-in broker's engine; only the disk and the network are
missing. ``memory://NAME`` names a broker shared by every transport of one event loop with that
name (so several services in one test talk to each other); plain ``memory://`` is the name
``default``. ``clock=`` (e.g. a ManualClock) lets tests fast-forward leases and delays.
"""

from __future__ import annotations

import asyncio
import secrets
import weakref
from collections import deque
from collections.abc import Sequence

from ..broker import BrokerRuntime
from ..clock import Clock
from ..errors import Closed, LeaseLost, NotFound, TidingsError
from ..model import (
    DeadLetter,
    Delivery,
    GroupInfo,
    GroupSpec,
    Message,
    Outgoing,
    Receipt,
    TopicInfo,
    TopicSpec,
)
from ..names import REPLY_PREFIX, is_reply_topic, refuse_reply_name
from ..storage.memory import MemoryStore
from .base import ALL_CAPABILITIES, SubscribeOptions, Transport, TransportSubscription
from .capabilities import require_group, require_topic
from .leasing import LeaseRenewer

_brokers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, BrokerRuntime]] = (
    weakref.WeakKeyDictionary()
)


async def memory_runtime(name: str = "default", clock: Clock | None = None) -> BrokerRuntime:
    """The in-process broker called ``name`` on the running loop (started on first use)."""
    loop = asyncio.get_running_loop()
    runtimes = _brokers.setdefault(loop, {})
    runtime = runtimes.get(name)
    if runtime is None:
        runtime = BrokerRuntime(MemoryStore(), fsync="batch", clock=clock)
        runtimes[name] = runtime
        await runtime.start()
    return runtime


async def stop_memory_broker(name: str = "default") -> None:
    """Stop and forget the in-process broker ``name`` of the running loop, if it runs."""
    runtime = _brokers.get(asyncio.get_running_loop(), {}).pop(name, None)
    if runtime is not None:
        await runtime.stop()


async def reset_memory_brokers() -> None:
    """Stop and forget every in-process broker of the running loop (test isolation)."""
    runtimes = _brokers.pop(asyncio.get_running_loop(), {})
    for runtime in runtimes.values():
        await runtime.stop()


class MemorySubscription(TransportSubscription):
    def __init__(
        self,
        transport: MemoryTransport,
        spec: GroupSpec,
        prefetch: int,
        options: SubscribeOptions | None = None,
    ) -> None:
        options = options or SubscribeOptions()
        self.spec = spec
        self._transport = transport
        self._broker = transport.runtime.broker
        self._buffer: deque[Message] = deque()
        self._arrived = asyncio.Event()
        self._closed = False
        self._error: TidingsError | None = None  # why the broker closed it (MemberStuck)
        self.leases: LeaseRenewer[Message] = LeaseRenewer(
            spec.lease,
            self._extend_many,
            max_extension=0.0 if spec.auto_ack else options.max_lease_extension,
        )
        self.member_id = self._broker.join(
            spec,
            prefetch=prefetch,
            deliver=self._deliver,
            closed=self._member_closed,
            prefetch_bytes=options.prefetch_bytes,
        )

    def _member_closed(self, error: TidingsError) -> None:
        """The broker removed this member (stuck): nothing buffered is handed out any more."""
        self._error = error
        self._closed = True
        self._buffer.clear()
        self.leases.clear()
        self._arrived.set()

    def _deliver(self, deliveries: list[Delivery]) -> None:
        settler = None if self.spec.auto_ack else self
        messages = [Message(d, settler) for d in deliveries]
        self._buffer.extend(messages)
        if self.leases.enabled:
            for message in messages:
                self.leases.track(message)
        self._arrived.set()

    def _take(self) -> Message | None:
        """The next buffered message, or None if its lease was lost while it waited."""
        message = self._buffer.popleft()
        if self.spec.auto_ack:
            self._broker.add_credit(self.member_id, 1)
            return message
        if not self.leases.take(message):
            self.leases.release(message)  # the broker redelivers it; never hand out a dead lease
            # the consumer is taking messages: the credit that lease held comes back
            self._broker.add_credit(self.member_id, 1)
            return None
        return message

    async def _extend_many(self, messages: list[Message]) -> list[Message]:
        refused = []
        lease = self.spec.lease
        for message in messages:
            try:
                self._broker.extend(self.member_id, message.partition, message.offset, lease)
            except (LeaseLost, NotFound):
                refused.append(message)
        return refused

    async def next(self, timeout: float | None = None) -> Message | None:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            while not self._buffer:
                if self._closed:
                    raise self._error or Closed("the subscription is closed")
                self._arrived.clear()
                remaining = None if deadline is None else max(0.0, deadline - loop.time())
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                    async with asyncio.timeout(remaining):
                        await self._arrived.wait()
                except TimeoutError:
                    return None
            message = self._take()
            if message is not None:
                return message

    async def next_batch(self, max_count: int, timeout: float | None = None) -> list[Message]:
        first = await self.next(timeout)
        if first is None:
            return []
        out = [first]
        while self._buffer and len(out) < max_count:
            message = self._take()
            if message is not None:
                out.append(message)
        return out

    async def ack(self, message: Message) -> None:
        self.leases.release(message)
        self._broker.ack(self.member_id, message.partition, message.offset)

    async def ack_many(self, messages: Sequence[Message]) -> None:
        refs = []
        release = self.leases.release
        for message in messages:
            if message._settler is self and not message.settled:
                message.settled = True
                release(message)
                refs.append((message.partition, message.offset))
        errors = [e for e in self._broker.ack_many(self.member_id, refs) if e is not None]
        if errors:
            raise errors[0]

    async def nack(self, message: Message, delay: float = 0.0, error: str | None = None) -> None:
        self.leases.release(message)
        self._broker.nack(self.member_id, message.partition, message.offset, delay, error)

    async def extend(self, message: Message, seconds: float) -> None:
        self._broker.extend(self.member_id, message.partition, message.offset, seconds)

    async def reject(self, message: Message, reason: str = "rejected") -> None:
        self.leases.release(message)
        self._broker.reject(self.member_id, message.partition, message.offset, reason)

    async def close(self) -> None:
        if self._closed:
            if self._error is not None:  # closed by the broker: the renewer may still run
                self._transport._subs.discard(self)
                await self.leases.close()
            return
        self._closed = True
        # what the application never got goes back uncounted (auto-ack: nothing is held)
        unhanded = None if self.spec.auto_ack else [(m.partition, m.offset) for m in self._buffer]
        self._buffer.clear()
        self._arrived.set()
        await self.leases.close()
        self._transport._subs.discard(self)
        if self.member_id in self._broker._members:
            self._broker.leave(self.member_id, unhanded)


class MemoryTransport(Transport):
    scheme = "memory"
    capabilities = ALL_CAPABILITIES

    def __init__(self, url: str = "memory://", *, clock: Clock | None = None, **_: object):
        self.url = url
        self.name = url.partition("://")[2].strip("/") or "default"
        self.clock = clock
        self._runtime: BrokerRuntime | None = None
        self._subs: set[MemorySubscription] = set()

    @property
    def runtime(self) -> BrokerRuntime:
        if self._runtime is None:
            raise Closed("memory:// transport is not connected: call connect() first")
        return self._runtime

    async def connect(self) -> None:
        if self._runtime is None:
            self._runtime = await memory_runtime(self.name, self.clock)

    async def close(self) -> None:
        for sub in list(self._subs):
            await sub.close()
        if self._runtime is not None:
            self._runtime.broker.drop_owner(self)
            self._runtime = None

    async def create_topic(
        self, spec: TopicSpec, *, exist_ok: bool = True, given: Sequence[str] | None = None
    ) -> TopicSpec:
        refuse_reply_name(spec.name)
        require_topic(self, spec)
        return self.runtime.broker.create_topic(spec, exist_ok=exist_ok, given=given)

    async def delete_topic(self, name: str) -> None:
        self.runtime.broker.delete_topic(name)

    async def list_topics(self) -> list[TopicSpec]:
        broker = self.runtime.broker
        return [  # another transport's reply topics are not listed (as on the broker)
            t
            for t in broker.list_topics()
            if not is_reply_topic(t.name) or broker.topic_owner(t.name) is self
        ]

    async def topic_info(self, name: str) -> TopicInfo:
        return self.runtime.broker.topic_info(name)

    async def publish(self, topic: str, messages: Sequence[Outgoing]) -> list[Receipt]:
        return await self.runtime.publish(topic, messages)

    async def subscribe(
        self, spec: GroupSpec, *, prefetch: int = 100, options: SubscribeOptions | None = None
    ) -> TransportSubscription:
        spec.validate()
        require_group(self, spec)
        sub = MemorySubscription(self, spec, prefetch, options)
        self._subs.add(sub)
        return sub

    async def group_info(self, topic: str, group: str) -> GroupInfo:
        return self.runtime.broker.group_info(topic, group)

    async def delete_group(self, topic: str, group: str) -> None:
        self.runtime.broker.delete_group(topic, group)

    async def reset_group(
        self, topic: str, group: str, start: str = "earliest", start_value: float | None = None
    ) -> None:
        self.runtime.broker.reset_group(topic, group, start, start_value)

    async def dead_letters(self, topic: str, group: str, limit: int = 100) -> list[DeadLetter]:
        return self.runtime.broker.dead_letters(topic, group, limit)

    async def redrive(
        self, topic: str, group: str, ids: Sequence[str] | None = None, limit: int | None = None
    ) -> list[str]:
        return await self.runtime.redrive(topic, group, ids, limit)

    async def discard_dead_letters(
        self, topic: str, group: str, ids: Sequence[str] | None = None, limit: int | None = None
    ) -> list[str]:
        return await self.runtime.discard_dead_letters(topic, group, ids, limit)

    async def create_reply_topic(self) -> str:
        name = f"{REPLY_PREFIX}{secrets.token_hex(12)}"  # the reserved namespace
        spec = TopicSpec(name=name, temporary=True, dedup_window=0)
        self.runtime.broker.create_topic(spec, owner=self)
        return name
