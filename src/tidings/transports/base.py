"""The transport interface: what every engine (`memory://`, `tidings://`, `nats://`) offers.

Transports speak tidings' vocabulary (topic, group, lease, ack, nack with delay, extend,
reject). Semantics that can be written once (request/reply, retries, idempotency, middleware,
typed payloads) live above this interface in `tidings.client` and `tidings.service`.

What an engine cannot do is declared in ``capabilities`` and refused with
:class:`tidings.errors.Unsupported` when a subscription or topic is declared, never when it
first fails.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence, Sized
from typing import ClassVar

import msgspec

from ..errors import TidingsError
from ..model import (
    DeadLetter,
    GroupInfo,
    GroupSpec,
    Message,
    Outgoing,
    Receipt,
    TopicInfo,
    TopicSpec,
)
from ..trace import Trace
from .leasing import DEFAULT_MAX_LEASE_EXTENSION

# Capability names. A transport lists the ones it supports exactly as the built-in broker does.
CAP_ORDERED = "ordered"  # ordered groups with exclusive partition assignment
CAP_KEY_ORDERED = "key_ordered"  # shared groups with one in-flight message per key
CAP_TTL = "ttl"
CAP_DELAY = "delay"
CAP_DEDUP = "dedup"
CAP_AUTO_ACK = "auto_ack"
CAP_WORK_QUEUE = "work_queue"  # retention='work-queue'
CAP_START_TIME = "start_time"  # groups starting at a timestamp
CAP_START_OFFSET = "start_offset"
CAP_GROUP_RESET = "group_reset"
CAP_DEAD_LETTER_EXPIRED = "dead_letter_expired"
CAP_REPLICAS = "replicas"
CAP_REDRIVE = "redrive"  # dead_letters / redrive / discard_dead_letters of a group
CAP_PREFETCH_BYTES = "prefetch_bytes"  # a member's in-flight budget in bytes as well as count

ALL_CAPABILITIES = frozenset(
    {
        CAP_ORDERED,
        CAP_KEY_ORDERED,
        CAP_TTL,
        CAP_DELAY,
        CAP_DEDUP,
        CAP_AUTO_ACK,
        CAP_WORK_QUEUE,
        CAP_START_TIME,
        CAP_START_OFFSET,
        CAP_GROUP_RESET,
        CAP_DEAD_LETTER_EXPIRED,
        CAP_REDRIVE,
        CAP_PREFETCH_BYTES,
    }
)


class SubscribeOptions(msgspec.Struct, frozen=True):
    """How a member's client side keeps leases and settles; the broker never sees these.

    ``max_lease_extension``: seconds after arrival during which the client extends a message's
    lease while it waits in the buffer or the application holds it (0: never extend).
    ``confirm_acks``: ``ack()`` waits for the broker's confirmation (and raises its refusal);
    without it an ack is queued for the next batched frame and returns at once. A transport
    used on its own confirms (the conservative default); ``tidings.connect`` clients pass
    ``confirm_acks=False`` unless told otherwise (docs/client.md, "Ack modes").
    """

    max_lease_extension: float = DEFAULT_MAX_LEASE_EXTENSION
    confirm_acks: bool = True
    # the member's in-flight budget in bytes of message bodies (0: count only); unlike the
    # fields above it is sent to the broker, which enforces it (capability prefetch_bytes)
    prefetch_bytes: int = 0


class TransportSubscription(abc.ABC):
    """A member of a consumer group. Messages arrive through :meth:`next`; each message's
    ack/nack/extend/reject calls back into this subscription (it is the message's Settler)."""

    spec: GroupSpec

    @abc.abstractmethod
    async def next(self, timeout: float | None = None) -> Message | None:
        """The next message, or None when ``timeout`` passes first. Raises Closed once closed."""

    async def next_batch(self, max_count: int, timeout: float | None = None) -> list[Message]:
        """Up to ``max_count`` messages that are already here (waits for the first one)."""
        first = await self.next(timeout)
        return [] if first is None else [first]

    @abc.abstractmethod
    async def ack(self, message: Message) -> None: ...

    async def ack_many(self, messages: Sequence[Message]) -> None:
        """Ack every message (transports that can put them in one frame do); a refusal is
        raised after all were tried (the first one)."""
        first: BaseException | None = None
        for message in messages:
            try:
                await message.ack()
            except TidingsError as exc:
                first = first or exc
        if first is not None:
            raise first

    @abc.abstractmethod
    async def nack(self, message: Message, delay: float = 0.0, error: str | None = None) -> None:
        """Make the message deliverable again after ``delay`` seconds; ``error`` is kept as the
        last error text (it appears in the dead-letter headers if it ends there)."""

    @abc.abstractmethod
    async def extend(self, message: Message, seconds: float) -> None:
        """Prolong the lease: the message stays invisible for ``seconds`` from now."""

    @abc.abstractmethod
    async def reject(self, message: Message, reason: str = "rejected") -> None:
        """Dead-letter the message at once with ``reason``."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Leave the group; un-acked messages return to it (shared) or stay for the next owner."""


class BufferedSubscription(TransportSubscription):
    """A subscription whose engine deliveries wait in a local ``_buffer`` (nats://, redis://,
    amqp://): a batch is the first message plus whatever is already buffered."""

    _buffer: Sized

    async def next_batch(self, max_count: int, timeout: float | None = None) -> list[Message]:
        first = await self.next(timeout)
        if first is None:
            return []
        out = [first]
        while len(out) < max_count and self._buffer:
            message = await self.next(0)
            if message is None:
                break
            out.append(message)
        return out


class Transport(abc.ABC):
    """One connection to one engine."""

    scheme: ClassVar[str]
    capabilities: ClassVar[frozenset[str]] = ALL_CAPABILITIES

    @abc.abstractmethod
    async def connect(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None:
        """Close subscriptions and the connection; temporary topics are deleted."""

    # topics
    @abc.abstractmethod
    async def create_topic(
        self, spec: TopicSpec, *, exist_ok: bool = True, given: Sequence[str] | None = None
    ) -> TopicSpec:
        """Create the topic. With ``exist_ok`` an existing topic is returned as it is, unless
        its values of the settings named in ``given`` differ from ``spec``'s: TopicConflict."""

    @abc.abstractmethod
    async def delete_topic(self, name: str) -> None: ...

    @abc.abstractmethod
    async def list_topics(self) -> list[TopicSpec]: ...

    @abc.abstractmethod
    async def topic_info(self, name: str) -> TopicInfo: ...

    # publishing
    @abc.abstractmethod
    async def publish(self, topic: str, messages: Sequence[Outgoing]) -> list[Receipt]:
        """Publish and return once every message is confirmed durable (one receipt each)."""

    # groups
    @abc.abstractmethod
    async def subscribe(
        self, spec: GroupSpec, *, prefetch: int = 100, options: SubscribeOptions | None = None
    ) -> TransportSubscription:
        """Join (creating if needed) the group as a new member with ``prefetch`` credit;
        ``options`` say how the client keeps leases and settles (see SubscribeOptions)."""

    @abc.abstractmethod
    async def group_info(self, topic: str, group: str) -> GroupInfo: ...

    @abc.abstractmethod
    async def delete_group(self, topic: str, group: str) -> None: ...

    async def reset_group(
        self, topic: str, group: str, start: str = "earliest", start_value: float | None = None
    ) -> None:
        from ..errors import Unsupported

        raise Unsupported(f"{self.scheme}:// cannot reset a group's position")

    # dead letters (capability "redrive")
    async def dead_letters(self, topic: str, group: str, limit: int = 100) -> list[DeadLetter]:
        """The group's dead letters that wait (not redriven nor discarded), oldest first."""
        raise self._no_redrive()

    async def redrive(
        self, topic: str, group: str, ids: Sequence[str] | None = None, limit: int | None = None
    ) -> list[str]:
        """Send the group's dead letters (all, ``ids``, or the oldest ``limit``) back to that
        group only, under their original ids; return the ids redriven."""
        raise self._no_redrive()

    async def discard_dead_letters(
        self, topic: str, group: str, ids: Sequence[str] | None = None, limit: int | None = None
    ) -> list[str]:
        """Drop the group's dead letters for good; return the ids discarded."""
        raise self._no_redrive()

    def _no_redrive(self) -> TidingsError:
        from ..errors import Unsupported

        return Unsupported(
            f"{self.scheme}:// cannot list or redrive a group's dead letters yet: read the "
            "dead-letter topic (<topic>.<group>.dlq) with subscribe() and republish what you "
            "need, or run the group on tidings:// (see docs/transports.md)"
        )

    async def trace(self, kind: str, value: str, after: int = 0, limit: int = 1000) -> Trace:
        from ..errors import Unsupported

        raise Unsupported(
            f"{self.scheme}:// keeps no message trace: the built-in broker does (tidings://, "
            "started with --trace)"
        )

    # request/reply support
    @abc.abstractmethod
    async def create_reply_topic(self) -> str:
        """A temporary topic private to this connection, deleted when it closes."""

    def require(self, capability: str, what: str) -> None:
        """Raise Unsupported naming ``what`` if this transport lacks ``capability``."""
        if capability not in self.capabilities:
            from ..errors import Unsupported

            raise Unsupported(
                f"{what} is not supported by {self.scheme}:// "
                f"(capability {capability!r}); see docs/transports.md"
            )
