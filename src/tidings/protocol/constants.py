"""Every constant of the tidings wire protocol, declared once.

Mirrored in docs/design/protocol.md. The frame header layout, the frame type numbers of
HELLO, WELCOME and ERROR and the field names of their (map-encoded) payloads never change
between protocol versions, so any client and any broker can always tell each other that they
do not share a version.
"""

from __future__ import annotations

# A HELLO's ``magic`` field: a connection that does not start with it is not a tidings client.
MAGIC = "tidings"

# Protocol versions this code speaks (inclusive range); the highest common one is chosen.
PROTOCOL_VERSION = 1
MIN_PROTOCOL_VERSION = 1

# Frame header: u32 payload length | u8 frame type | u32 request id, all big-endian.
HEADER_FORMAT = ">IBI"
HEADER_SIZE = 9

# Payload size limits (bytes, the header not counted).
DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024
MAX_FRAME_SIZE_LIMIT = 256 * 1024 * 1024  # no configuration may go above this
HANDSHAKE_MAX_FRAME_SIZE = 64 * 1024  # frames before the handshake completes

DEFAULT_PORT = 7420
DEFAULT_HEARTBEAT_INTERVAL = 5.0  # seconds; a peer silent for HEARTBEAT_MISSES intervals is dead
HEARTBEAT_MISSES = 3

# Request id 0: a frame that wants no reply (HEARTBEAT, CREDIT) or a server push.
NO_REPLY = 0
MAX_REQUEST_ID = 0xFFFF_FFFF

# A reply's frame type is its request's type with this bit set.
REPLY_BIT = 0x80

# Frame types: requests (client to server). Each gets a reply of type (request | REPLY_BIT)
# or an ERROR, except HEARTBEAT and CREDIT, which get none.
HELLO = 0x01
PING = 0x02
STATS = 0x03
CREATE_TOPIC = 0x10
DELETE_TOPIC = 0x11
LIST_TOPICS = 0x12
TOPIC_INFO = 0x13
CREATE_REPLY_TOPIC = 0x14
PUBLISH = 0x20
SUBSCRIBE = 0x28
UNSUBSCRIBE = 0x29
ACK = 0x2A
NACK = 0x2B
EXTEND = 0x2C
REJECT = 0x2D
CREDIT = 0x2E
GROUP_INFO = 0x30
DELETE_GROUP = 0x31
RESET_GROUP = 0x32
LIST_GROUPS = 0x33
DEAD_LETTERS = 0x34  # a group's dead letters that wait (not redriven, not discarded)
REDRIVE = 0x35  # send a group's dead letters back to that group only
DISCARD_DEAD_LETTERS = 0x36  # the purge: drop a group's dead letters for good
TRACE = 0x38  # the message trace (docs/tracing.md)
HEARTBEAT = 0x3E  # either direction, never answered

# Frame types: server pushes (request id 0).
DELIVER = 0x40
SUB_CLOSED = 0x41
GOODBYE = 0x42

# Frame types: replies.
WELCOME = HELLO | REPLY_BIT
ERROR = 0xFF

REQUEST_TYPES = frozenset(
    {
        HELLO,
        PING,
        STATS,
        CREATE_TOPIC,
        DELETE_TOPIC,
        LIST_TOPICS,
        TOPIC_INFO,
        CREATE_REPLY_TOPIC,
        PUBLISH,
        SUBSCRIBE,
        UNSUBSCRIBE,
        ACK,
        NACK,
        EXTEND,
        REJECT,
        CREDIT,
        GROUP_INFO,
        DELETE_GROUP,
        RESET_GROUP,
        LIST_GROUPS,
        DEAD_LETTERS,
        REDRIVE,
        DISCARD_DEAD_LETTERS,
        TRACE,
    }
)
UNANSWERED_TYPES = frozenset({HEARTBEAT, CREDIT})
PUSH_TYPES = frozenset({DELIVER, SUB_CLOSED, GOODBYE})

# What each side may receive.
CLIENT_TO_SERVER = REQUEST_TYPES | {HEARTBEAT}
SERVER_TO_CLIENT = (
    frozenset(t | REPLY_BIT for t in REQUEST_TYPES - UNANSWERED_TYPES)
    | PUSH_TYPES
    | {ERROR, HEARTBEAT}
)

FRAME_NAMES: dict[int, str] = {
    HELLO: "HELLO",
    PING: "PING",
    STATS: "STATS",
    CREATE_TOPIC: "CREATE_TOPIC",
    DELETE_TOPIC: "DELETE_TOPIC",
    LIST_TOPICS: "LIST_TOPICS",
    TOPIC_INFO: "TOPIC_INFO",
    CREATE_REPLY_TOPIC: "CREATE_REPLY_TOPIC",
    PUBLISH: "PUBLISH",
    SUBSCRIBE: "SUBSCRIBE",
    UNSUBSCRIBE: "UNSUBSCRIBE",
    ACK: "ACK",
    NACK: "NACK",
    EXTEND: "EXTEND",
    REJECT: "REJECT",
    CREDIT: "CREDIT",
    GROUP_INFO: "GROUP_INFO",
    DELETE_GROUP: "DELETE_GROUP",
    RESET_GROUP: "RESET_GROUP",
    LIST_GROUPS: "LIST_GROUPS",
    DEAD_LETTERS: "DEAD_LETTERS",
    REDRIVE: "REDRIVE",
    DISCARD_DEAD_LETTERS: "DISCARD_DEAD_LETTERS",
    TRACE: "TRACE",
    HEARTBEAT: "HEARTBEAT",
    DELIVER: "DELIVER",
    SUB_CLOSED: "SUB_CLOSED",
    GOODBYE: "GOODBYE",
    ERROR: "ERROR",
}
FRAME_NAMES.update(
    {t | REPLY_BIT: FRAME_NAMES[t] + "_REPLY" for t in REQUEST_TYPES - UNANSWERED_TYPES}
)
FRAME_NAMES[WELCOME] = "WELCOME"


def frame_name(frame_type: int) -> str:
    """A frame type's name for messages and logs (``0x5f`` for unknown types)."""
    return FRAME_NAMES.get(frame_type, f"0x{frame_type:02x}")
