"""The tidings vocabulary as data: topic and group specs, messages, receipts and stats.

These types are shared by the broker, the protocol, the clients and every transport. They are
msgspec Structs so the protocol can encode them directly and construction stays cheap on hot
paths. The per-message Structs (Outgoing, Record, Receipt, Delivery) hold only bytes, strings,
numbers and a str->str dict, so they can never be part of a reference cycle: they are built with
``gc=False`` and the cyclic collector never scans them. A broker holds many of them (its tail
cache, loaded entries), and scanning them made young collections take 5-7 ms, a latency tail.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol

import msgspec

from .errors import BadRequest
from .names import validate_name

if TYPE_CHECKING:
    pass

Retention = Literal["limits", "work-queue"]
Overflow = Literal["drop-oldest", "reject"]
Mode = Literal["shared", "ordered"]
StartKind = Literal["earliest", "latest", "offset", "time"]

DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024
DEFAULT_MAX_DELIVERIES = 20  # as RabbitMQ quorum queues; 0 means unlimited
DEFAULT_LEASE = 30.0
DEFAULT_DEDUP_WINDOW = 120.0  # as NATS JetStream's default duplicate window
DEFAULT_SESSION_TIMEOUT = 10.0


class TopicSpec(msgspec.Struct, kw_only=True, frozen=True):
    """A topic's settings. ``max_*`` of ``None`` means no limit."""

    name: str
    partitions: int = 1
    retention: Retention = "limits"
    max_age: float | None = None  # seconds
    max_bytes: int | None = None
    max_messages: int | None = None
    overflow: Overflow = "drop-oldest"  # what `limits` does when max_bytes/max_messages is hit
    dedup_window: float = DEFAULT_DEDUP_WINDOW  # seconds; 0 turns duplicate detection off
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    replicas: int = 1  # honoured by clustered transports (nats://)
    storage: Literal["file", "memory"] = "file"  # honoured by nats://
    temporary: bool = False  # reply topics: private to their connection, deleted on close

    def validate(self) -> TopicSpec:
        validate_name("topic", self.name)
        if not isinstance(self.partitions, int) or not 1 <= self.partitions <= 1024:
            raise BadRequest(
                f"partitions must be an integer from 1 to 1024, got {self.partitions!r}"
            )
        if self.retention not in ("limits", "work-queue"):
            raise BadRequest(f"retention must be 'limits' or 'work-queue', got {self.retention!r}")
        if self.overflow not in ("drop-oldest", "reject"):
            raise BadRequest(f"overflow must be 'drop-oldest' or 'reject', got {self.overflow!r}")
        for field in ("max_age", "max_bytes", "max_messages"):
            value = getattr(self, field)
            if value is not None and value <= 0:
                raise BadRequest(f"{field} must be positive or None, got {value!r}")
        if self.dedup_window < 0:
            raise BadRequest("dedup_window must be >= 0 seconds")
        if not 1 <= self.max_message_size <= 64 * 1024 * 1024:
            raise BadRequest("max_message_size must be from 1 byte to 64 MiB")
        return self


class GroupSpec(msgspec.Struct, kw_only=True, frozen=True):
    """A consumer group's settings: a named cursor on a topic."""

    topic: str
    name: str
    mode: Mode = "shared"
    lease: float = DEFAULT_LEASE  # visibility timeout of a shared delivery, seconds
    max_deliveries: int = DEFAULT_MAX_DELIVERIES  # 0 = unlimited
    start: StartKind = "earliest"
    start_value: float | None = None  # the offset or the timestamp for start='offset'/'time'
    key_ordered: bool = False  # shared mode: one in-flight message per key, in publish order
    auto_ack: bool = False  # at-most-once: acknowledged on delivery
    dead_letter_topic: str | None = None  # default: headers.dead_letter_topic(topic, name)
    dead_letter_expired: bool = False  # expired messages go to the dead-letter topic
    in_flight_per_partition: int = 1  # ordered mode: the per-partition in-flight window
    session_timeout: float = DEFAULT_SESSION_TIMEOUT  # a member silent this long is dropped

    def validate(self) -> GroupSpec:
        validate_name("topic", self.topic)
        validate_name("group", self.name)
        if self.mode not in ("shared", "ordered"):
            raise BadRequest(f"mode must be 'shared' or 'ordered', got {self.mode!r}")
        if not self.lease > 0:
            raise BadRequest("lease must be > 0 seconds")
        if self.max_deliveries < 0:
            raise BadRequest("max_deliveries must be >= 0 (0 means unlimited)")
        if self.start not in ("earliest", "latest", "offset", "time"):
            raise BadRequest("start must be 'earliest', 'latest', an offset or a timestamp")
        if self.start in ("offset", "time") and self.start_value is None:
            raise BadRequest(f"start={self.start!r} needs start_value")
        if self.in_flight_per_partition < 1:
            raise BadRequest("in_flight_per_partition must be >= 1")
        if self.key_ordered and self.mode != "shared":
            raise BadRequest("key_ordered applies to shared groups; ordered groups keep key order")
        if self.dead_letter_topic is not None:
            validate_name("topic", self.dead_letter_topic)
        return self


class Outgoing(msgspec.Struct, kw_only=False, gc=False):
    """A message to publish. ``ttl`` and ``delay`` are seconds."""

    body: bytes
    key: str | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    msg_id: str | None = None  # producer message id, for duplicate detection
    ttl: float | None = None
    delay: float | None = None


class Record(msgspec.Struct, array_like=True, gc=False):
    """A stored message: what the log holds at one offset of one partition."""

    offset: int
    timestamp: float  # publish time, seconds since the epoch
    id: str  # unique message id (broker-assigned)
    key: str | None
    headers: dict[str, str]
    body: bytes
    msg_id: str | None = None  # producer message id
    deliver_at: float | None = None  # delay: invisible before this time
    expires_at: float | None = None  # TTL: never delivered at or after this time


class Receipt(msgspec.Struct, frozen=True, gc=False):
    """The broker's answer to one publish."""

    topic: str
    partition: int
    offset: int
    id: str
    duplicate: bool = False


class DeadLetter(msgspec.Struct, kw_only=True, frozen=True):
    """A message waiting in a group's dead-letter topic, as it was before it died: its
    original id, producer id, key, headers and body, plus why and when it was moved."""

    id: str  # the original broker message id (a redrive keeps it)
    msg_id: str | None
    key: str | None
    headers: dict[str, str]  # the original headers (without the tidings-dlq-* ones)
    body: bytes
    reason: str  # max-deliveries | rejected | expired
    deliveries: int
    error: str | None
    dead_lettered_at: float
    partition: int  # where it sat in the origin topic
    offset: int


class Delivery(msgspec.Struct, gc=False):
    """One delivery of a record to a group member (what the engine hands out)."""

    topic: str
    group: str
    partition: int
    offset: int
    id: str
    key: str | None
    headers: dict[str, str]
    body: bytes
    timestamp: float
    delivery_count: int
    msg_id: str | None = None
    lease_until: float | None = None  # None for auto-ack deliveries


class Settler(Protocol):
    """What a :class:`Message` calls to settle itself (a transport subscription)."""

    async def ack(self, message: Message) -> None: ...
    async def nack(
        self, message: Message, delay: float = 0.0, error: str | None = None
    ) -> None: ...
    async def extend(self, message: Message, seconds: float) -> None: ...
    async def reject(self, message: Message, reason: str = "rejected") -> None: ...


class Message:
    """A received message. Settle it once with ack, nack or reject; extend keeps the lease."""

    __slots__ = (
        "_settler",
        "body",
        "delivery_count",
        "group",
        "headers",
        "id",
        "key",
        "msg_id",
        "offset",
        "partition",
        "settled",
        "timestamp",
        "topic",
    )

    def __init__(self, delivery: Delivery, settler: Settler | None) -> None:
        self.topic = delivery.topic
        self.group = delivery.group
        self.partition = delivery.partition
        self.offset = delivery.offset
        self.id = delivery.id
        self.key = delivery.key
        self.headers = delivery.headers
        self.body = delivery.body
        self.timestamp = delivery.timestamp
        self.delivery_count = delivery.delivery_count
        self.msg_id = delivery.msg_id
        self.settled = settler is None
        self._settler = settler

    async def ack(self) -> None:
        if self._settler is not None and not self.settled:
            self.settled = True
            await self._settler.ack(self)

    async def nack(self, delay: float = 0.0, error: str | None = None) -> None:
        if self._settler is not None and not self.settled:
            self.settled = True
            await self._settler.nack(self, delay, error)

    async def extend(self, seconds: float) -> None:
        if self._settler is not None and not self.settled:
            await self._settler.extend(self, seconds)

    async def reject(self, reason: str = "rejected") -> None:
        if self._settler is not None and not self.settled:
            self.settled = True
            await self._settler.reject(self, reason)

    def __repr__(self) -> str:
        return (
            f"Message(topic={self.topic!r}, partition={self.partition}, offset={self.offset}, "
            f"key={self.key!r}, delivery_count={self.delivery_count}, body={self.body[:40]!r})"
        )


class StuckMember(msgspec.Struct, kw_only=True):
    """A member with leases that expired and nothing settled since (``expiries`` of them): a
    consumer that stopped taking or settling messages while its connection lives. Still stuck
    ``--stuck-member-leases`` lease periods (default 3) after its first expiry, the broker
    closes its subscription (``MemberStuck``)."""

    member_id: str
    expiries: int  # leases that ran out on it since its last ack, nack or reject
    in_flight: int = 0
    partitions: list[int] = []  # ordered groups: the partitions it owns


class GroupInfo(msgspec.Struct, kw_only=True):
    """A group's stats. ready + in_flight + delayed and oldest_ready_age are the autoscaling
    signal; ``lag`` counts every message the group has not acknowledged yet."""

    topic: str
    name: str
    mode: Mode
    ready: int = 0
    in_flight: int = 0
    delayed: int = 0
    dead_lettered: int = 0
    lag: int = 0
    oldest_ready_age: float | None = None
    members: int = 0
    deliver_rate: float = 0.0
    ack_rate: float = 0.0
    spec: GroupSpec | None = None
    delivered_total: int = 0  # deliveries (first and re-) since the broker started
    acked_total: int = 0  # messages the group is done with (acked, dead-lettered, expired)
    # built-in broker: how deliveries ended since start, by outcome (acked, nacked, rejected,
    # expired, dead_lettered, lease_expired, deleted; see tidings.broker.group.outcomes)
    settlements: dict[str, int] = {}
    stuck_members: list[StuckMember] = []  # built-in broker, redis://: leases keep expiring


class PartitionInfo(msgspec.Struct, kw_only=True):
    partition: int
    first_offset: int
    next_offset: int
    bytes: int = 0


class TopicInfo(msgspec.Struct, kw_only=True):
    """A topic's stats with one entry per group."""

    name: str
    spec: TopicSpec
    messages: int = 0
    bytes: int = 0
    partitions: list[PartitionInfo] = msgspec.field(default_factory=list)
    groups: list[GroupInfo] = msgspec.field(default_factory=list)
    publish_rate: float = 0.0
    published_total: int = 0  # messages accepted since the broker started (with duplicates)

    def group(self, name: str) -> GroupInfo:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(name)
