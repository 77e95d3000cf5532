"""The payload of every frame type as a msgspec Struct.

Payloads are MessagePack. HELLO, WELCOME, ERROR and GOODBYE payloads are maps (field name to
value) whose fields never change meaning, so peers of any version understand each other's
handshake. Every other payload is a positional array (``array_like``): compact and fast, and
fixed by the negotiated protocol version. Topic and group specs and stats travel as maps inside
them, exactly as the :mod:`tidings.model` Structs encode.
"""

from __future__ import annotations

import msgspec

from ..model import DeadLetter, Delivery, GroupInfo, GroupSpec, Outgoing, TopicInfo, TopicSpec
from ..trace import Trace
from . import constants as c


class _Array(msgspec.Struct, array_like=True, gc=False):
    """Base of the positional payloads."""


# handshake and connection management (map-encoded, stable across versions)
class Hello(msgspec.Struct, kw_only=True):
    magic: str
    min_version: int
    max_version: int
    client: str = ""
    token: str | None = None  # the secret: a password (with user) or a token
    user: str | None = None


class Welcome(msgspec.Struct, kw_only=True):
    version: int
    server: str
    connection_id: str
    heartbeat: float
    max_frame_size: int
    max_message_size: int
    capabilities: list[str] = msgspec.field(default_factory=list)
    max_batch: int = 0  # messages per PUBLISH frame at most (0: not announced)
    user: str | None = None  # the authenticated user, when the broker has users


class Error(msgspec.Struct, kw_only=True):
    code: int
    message: str


class Goodbye(msgspec.Struct, kw_only=True):
    reason: str = ""


# positional payloads
class Empty(_Array):
    pass


class Ping(_Array):
    nonce: int = 0


class Pong(_Array):
    nonce: int
    server_time: float


class ServerStats(msgspec.Struct, kw_only=True):
    version: str
    uptime: float
    connections: int
    subscriptions: int
    write_buffer_bytes: int  # bytes waiting to be written, all connections
    max_write_buffer_bytes: int  # the most one connection has held since start
    paused_connections: int  # connections over the write high-water mark right now
    frames_in: int
    frames_out: int


class CreateTopic(_Array):
    spec: TopicSpec
    exist_ok: bool = False
    # the settings the caller chose: with exist_ok, the broker refuses an existing topic whose
    # values of these differ (TopicConflict); None compares none (older clients)
    given: list[str] | None = None


class TopicReply(_Array):
    spec: TopicSpec


class TopicName(_Array):
    name: str


class TopicList(_Array):
    topics: list[TopicSpec]


class CreateReplyTopic(_Array):
    name: str = ""  # chosen by the client (so it can re-create it after a reconnect) or the broker


class WireOutgoing(Outgoing, array_like=True, omit_defaults=True, gc=False):
    """An :class:`~tidings.model.Outgoing` as [body, key, headers, msg_id, ttl, delay]."""


class Publish(_Array):
    topic: str
    messages: list[WireOutgoing]


# one receipt: [partition, offset, id, duplicate]
WireReceipt = tuple[int, int, str, bool]


class PublishReply(_Array):
    receipts: list[WireReceipt]


class Subscribe(_Array):
    spec: GroupSpec
    prefetch: int
    prefetch_bytes: int = 0  # 0: count only (capability "prefetch_bytes")


class Subscribed(_Array):
    sub: int
    member: str
    spec: GroupSpec


class Unsubscribe(_Array):
    sub: int
    # flat partition, offset pairs of the deliveries the client never handed to the
    # application (returned uncounted); None: it names nothing (an older client)
    unhanded: list[int] | None = None


class Ack(_Array):
    sub: int
    positions: list[int]  # flat: partition, offset, partition, offset, ...


class Nack(_Array):
    sub: int
    items: list[tuple[int, int, float, str | None]]  # partition, offset, delay, error


class Extend(_Array):
    sub: int
    items: list[tuple[int, int, float]]  # partition, offset, seconds


class Reject(_Array):
    sub: int
    items: list[tuple[int, int, str]]  # partition, offset, reason


class SettleReply(_Array):
    errors: list[tuple[int, int, str]] = msgspec.field(default_factory=list)  # index, code, msg


class Credit(_Array):
    sub: int
    n: int


class GroupRef(_Array):
    topic: str
    group: str


class ResetGroup(_Array):
    topic: str
    group: str
    start: str = "earliest"
    start_value: float | None = None


class GroupList(_Array):
    groups: list[GroupSpec]


class DeadLettersOf(_Array):
    topic: str
    group: str
    limit: int = 100


class DeadLetterList(_Array):
    letters: list[DeadLetter]  # each a map, as the model Struct encodes


class RedriveOf(_Array):
    """REDRIVE and DISCARD_DEAD_LETTERS: all of a group's dead letters, the ``ids`` given, or
    the oldest ``limit``."""

    topic: str
    group: str
    ids: list[str] | None = None
    limit: int | None = None


class MessageIds(_Array):
    ids: list[str]


class TraceQuery(_Array):
    """What to trace: ``kind`` message (``value`` a broker id or producer msg_id),
    conversation (a correlation id or W3C trace id) or topic (events after seq ``after``)."""

    kind: str
    value: str
    after: int = 0
    limit: int = 1000


class WireDelivery(Delivery, array_like=True, gc=False):
    """A :class:`~tidings.model.Delivery` as an array of its fields in declaration order."""


class Deliver(_Array):
    sub: int
    deliveries: list[WireDelivery]


class SubClosed(_Array):
    sub: int
    code: int
    message: str


# frame type -> payload type
BODY_TYPES: dict[int, type] = {
    c.HELLO: Hello,
    c.WELCOME: Welcome,
    c.ERROR: Error,
    c.GOODBYE: Goodbye,
    c.HEARTBEAT: Empty,
    c.PING: Ping,
    c.PING | c.REPLY_BIT: Pong,
    c.STATS: Empty,
    c.STATS | c.REPLY_BIT: ServerStats,
    c.CREATE_TOPIC: CreateTopic,
    c.CREATE_TOPIC | c.REPLY_BIT: TopicReply,
    c.DELETE_TOPIC: TopicName,
    c.DELETE_TOPIC | c.REPLY_BIT: Empty,
    c.LIST_TOPICS: Empty,
    c.LIST_TOPICS | c.REPLY_BIT: TopicList,
    c.TOPIC_INFO: TopicName,
    c.TOPIC_INFO | c.REPLY_BIT: TopicInfo,
    c.CREATE_REPLY_TOPIC: CreateReplyTopic,
    c.CREATE_REPLY_TOPIC | c.REPLY_BIT: TopicName,
    c.PUBLISH: Publish,
    c.PUBLISH | c.REPLY_BIT: PublishReply,
    c.SUBSCRIBE: Subscribe,
    c.SUBSCRIBE | c.REPLY_BIT: Subscribed,
    c.UNSUBSCRIBE: Unsubscribe,
    c.UNSUBSCRIBE | c.REPLY_BIT: Empty,
    c.ACK: Ack,
    c.ACK | c.REPLY_BIT: SettleReply,
    c.NACK: Nack,
    c.NACK | c.REPLY_BIT: SettleReply,
    c.EXTEND: Extend,
    c.EXTEND | c.REPLY_BIT: SettleReply,
    c.REJECT: Reject,
    c.REJECT | c.REPLY_BIT: SettleReply,
    c.CREDIT: Credit,
    c.GROUP_INFO: GroupRef,
    c.GROUP_INFO | c.REPLY_BIT: GroupInfo,
    c.DELETE_GROUP: GroupRef,
    c.DELETE_GROUP | c.REPLY_BIT: Empty,
    c.RESET_GROUP: ResetGroup,
    c.RESET_GROUP | c.REPLY_BIT: Empty,
    c.LIST_GROUPS: TopicName,
    c.LIST_GROUPS | c.REPLY_BIT: GroupList,
    c.DEAD_LETTERS: DeadLettersOf,
    c.DEAD_LETTERS | c.REPLY_BIT: DeadLetterList,
    c.REDRIVE: RedriveOf,
    c.REDRIVE | c.REPLY_BIT: MessageIds,
    c.DISCARD_DEAD_LETTERS: RedriveOf,
    c.DISCARD_DEAD_LETTERS | c.REPLY_BIT: MessageIds,
    c.TRACE: TraceQuery,
    c.TRACE | c.REPLY_BIT: Trace,
    c.DELIVER: Deliver,
    c.SUB_CLOSED: SubClosed,
}
