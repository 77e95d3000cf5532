"""How tidings names map onto JetStream names, subjects and headers (declared once).

- A topic is one stream ``TIDINGS_<enc(topic)>`` whose subjects are ``tidings.<enc(topic)>.<p>``,
  one subject per partition; a message's offset is its stream sequence minus one.
- A shared group is one durable consumer ``<enc(group)>``; an ordered group is one durable
  consumer per partition, ``<enc(group)>_p<partition>``, filtered to that partition's subject.
- ``enc`` turns a tidings name (letters, digits, ``.``, ``-``, ``_``) into a JetStream-safe token
  by writing ``.`` as ``_2E`` and ``_`` as ``_5F``; it is injective, so names never collide.
- Internal state (group members, partition holders, per-message error text) lives in the
  ``TIDINGS-STATE`` stream under ``tidings-state.>``, one retained message per subject.
"""

from __future__ import annotations

import base64

STREAM_PREFIX = "TIDINGS_"
SUBJECT_PREFIX = "tidings"
STATE_STREAM = "TIDINGS-STATE"
STATE_SUBJECTS = "tidings-state.>"
MEMBERS_SUBJECT = "tidings-state.members"
MSG_STATE_SUBJECT = "tidings-state.msg"
HOLDER_SUBJECT = "tidings-state.holders"  # who processes an ordered group's partition now
NOTIFY_SUBJECT = "tidings-notify"  # core NATS (not stored): membership changed, re-check now
HOLD_CONSUMER = "_hold"  # keeps work-queue messages until the topic's first group exists
REPLY_TOPIC_PREFIX = "_tidings.reply."

# Headers tidings adds on the wire; they are stripped before the application sees a message.
H_ID = "tidings-id"
H_KEY = "tidings-key"
H_TTL = "tidings-ttl"  # seconds after the (server) publish time
H_DELAY = "tidings-delay"  # seconds after the (server) publish time
H_MSG_ID = "tidings-msg-id"  # the producer id when the topic's dedup is off
NATS_MSG_ID = "Nats-Msg-Id"
INTERNAL_HEADERS = frozenset({H_ID, H_KEY, H_TTL, H_DELAY, H_MSG_ID, NATS_MSG_ID})

# A header value NATS cannot carry as is (CR/LF, edge whitespace, empty) travels base64-encoded.
_ESCAPED = "=?b64?"


def enc(name: str) -> str:
    """A tidings name as one JetStream-safe token (no dots)."""
    return name.replace("_", "_5F").replace(".", "_2E")


def stream_name(topic: str) -> str:
    return STREAM_PREFIX + enc(topic)


def subject(topic: str, partition: int) -> str:
    return f"{SUBJECT_PREFIX}.{enc(topic)}.{partition}"


def subjects_of(topic: str) -> str:
    return f"{SUBJECT_PREFIX}.{enc(topic)}.*"


def partition_of(subject_: str) -> int:
    return int(subject_.rsplit(".", 1)[1])


def consumer_name(group: str, partition: int | None = None) -> str:
    return enc(group) if partition is None else f"{enc(group)}_p{partition}"


def members_subject(topic: str, group: str, member: str = "*") -> str:
    return f"{MEMBERS_SUBJECT}.{enc(topic)}.{enc(group)}.{member}"


def holder_subject(topic: str, group: str, partition: int | str = "*") -> str:
    return f"{HOLDER_SUBJECT}.{enc(topic)}.{enc(group)}.{partition}"


def topic_members_subject(topic: str) -> str:
    return f"{MEMBERS_SUBJECT}.{enc(topic)}.>"


def topic_holders_subject(topic: str) -> str:
    return f"{HOLDER_SUBJECT}.{enc(topic)}.>"


def notify_subject(topic: str, group: str) -> str:
    return f"{NOTIFY_SUBJECT}.{enc(topic)}.{enc(group)}"


def msg_state_subject(stream: str, consumer: str, seq: int) -> str:
    return f"{MSG_STATE_SUBJECT}.{stream}.{consumer}.{seq}"


def escape_value(value: str) -> str:
    if (
        not value
        or value != value.strip()
        or "\r" in value
        or "\n" in value
        or value.startswith(_ESCAPED)
    ):
        return _ESCAPED + base64.b64encode(value.encode("utf-8")).decode("ascii")
    return value


def unescape_value(value: str) -> str:
    if value.startswith(_ESCAPED):
        return base64.b64decode(value[len(_ESCAPED) :]).decode("utf-8")
    return value


def valid_header_name(name: str) -> bool:
    return bool(name) and name.isascii() and name.isprintable() and not any(c in name for c in ": ")


class AckReply:
    """The fields JetStream packs into a delivered message's reply subject."""

    __slots__ = ("consumer", "num_delivered", "pending", "stream", "stream_seq", "timestamp")

    def __init__(self, reply: str) -> None:
        tokens = reply.split(".")
        # v1: $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
        # v2: $JS.ACK.<domain>.<account hash>.<stream>.<consumer>.... (newer servers)
        base = 2 if len(tokens) == 9 else 4
        self.stream = tokens[base]
        self.consumer = tokens[base + 1]
        self.num_delivered = int(tokens[base + 2])
        self.stream_seq = int(tokens[base + 3])
        self.timestamp = int(tokens[base + 5]) / 1e9
        self.pending = int(tokens[base + 6])


def is_delivery(reply: str | None) -> bool:
    return reply is not None and reply.startswith("$JS.ACK.")
