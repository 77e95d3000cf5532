"""The MQTT wire format, sans-IO: packets of MQTT 3.1.1 (protocol level 4) and 5.0 (level 5).

``PacketDecoder.feed(bytes)`` returns the whole packets received so far and keeps the rest;
``encode(packet, version)`` returns a packet's bytes. Every rule of the fixed header (flags
per type, the remaining length's at most four bytes, the packet size limit), of the variable
header and of v5 properties (which property each packet may carry, at most once unless it
may repeat, value ranges) is checked: anything else raises :class:`MalformedPacket` with the
MQTT reason code the server answers with (0x81 malformed, 0x82 protocol error, 0x95 packet
too large, 0x84 unsupported protocol version), and nothing else escapes the decoder.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ...errors import ProtocolError

# packet types
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(8, 16)
NAMES = {
    1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
    7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
    12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH",
}  # fmt: skip
V311, V5 = 4, 5
MAX_REMAINING = 268_435_455  # four varint bytes

# reason codes used by the server (v5 names; v3.1.1 CONNACK codes below)
SUCCESS = 0x00
UNSPECIFIED = 0x80
MALFORMED = 0x81
PROTOCOL_ERROR = 0x82
IMPLEMENTATION_SPECIFIC = 0x83
UNSUPPORTED_VERSION = 0x84
CLIENT_ID_NOT_VALID = 0x85
BAD_USER_OR_PASSWORD = 0x86
NOT_AUTHORIZED = 0x87
SERVER_UNAVAILABLE = 0x88
SERVER_BUSY = 0x89
SERVER_SHUTTING_DOWN = 0x8B
KEEP_ALIVE_TIMEOUT = 0x8D
SESSION_TAKEN_OVER = 0x8E
TOPIC_FILTER_INVALID = 0x8F
TOPIC_NAME_INVALID = 0x90
PACKET_ID_IN_USE = 0x91
PACKET_ID_NOT_FOUND = 0x92
RECEIVE_MAXIMUM_EXCEEDED = 0x93
PACKET_TOO_LARGE = 0x95
QUOTA_EXCEEDED = 0x97
PAYLOAD_FORMAT_INVALID = 0x99
RETAIN_NOT_SUPPORTED = 0x9A
QOS_NOT_SUPPORTED = 0x9B
SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
WILDCARDS_NOT_SUPPORTED = 0xA2
NO_MATCHING_SUBSCRIBERS = 0x10
NO_SUBSCRIPTION_EXISTED = 0x11
# MQTT 3.1.1 CONNACK return codes
V3_UNACCEPTABLE_VERSION = 0x01
V3_IDENTIFIER_REJECTED = 0x02
V3_SERVER_UNAVAILABLE = 0x03
V3_BAD_USER_OR_PASSWORD = 0x04
V3_NOT_AUTHORIZED = 0x05
V3_SUBACK_FAILURE = 0x80


class MalformedPacket(ProtocolError):
    """A packet breaks the MQTT rules; ``reason`` is the v5 reason code to answer with."""

    def __init__(self, message: str, reason: int = MALFORMED) -> None:
        super().__init__(message)
        self.reason = reason


# -- v5 properties -------------------------------------------------------------------------

BYTE, TWO, FOUR, VARINT, STRING, BINARY, PAIR = range(7)
# id -> (name, type); the name is the key in a packet's ``properties`` dict
PROPERTIES: dict[int, tuple[str, int]] = {
    0x01: ("payload_format_indicator", BYTE),
    0x02: ("message_expiry_interval", FOUR),
    0x03: ("content_type", STRING),
    0x08: ("response_topic", STRING),
    0x09: ("correlation_data", BINARY),
    0x0B: ("subscription_identifier", VARINT),
    0x11: ("session_expiry_interval", FOUR),
    0x12: ("assigned_client_identifier", STRING),
    0x13: ("server_keep_alive", TWO),
    0x15: ("authentication_method", STRING),
    0x16: ("authentication_data", BINARY),
    0x17: ("request_problem_information", BYTE),
    0x18: ("will_delay_interval", FOUR),
    0x19: ("request_response_information", BYTE),
    0x1A: ("response_information", STRING),
    0x1C: ("server_reference", STRING),
    0x1F: ("reason_string", STRING),
    0x21: ("receive_maximum", TWO),
    0x22: ("topic_alias_maximum", TWO),
    0x23: ("topic_alias", TWO),
    0x24: ("maximum_qos", BYTE),
    0x25: ("retain_available", BYTE),
    0x26: ("user_property", PAIR),
    0x27: ("maximum_packet_size", FOUR),
    0x28: ("wildcard_subscription_available", BYTE),
    0x29: ("subscription_identifier_available", BYTE),
    0x2A: ("shared_subscription_available", BYTE),
}
PROPERTY_IDS = {name: pid for pid, (name, _) in PROPERTIES.items()}
WILL = 0  # the will properties of CONNECT: a pseudo packet type in ALLOWED
_ACKS = {0x1F, 0x26}
ALLOWED: dict[int, frozenset[int]] = {
    CONNECT: frozenset({0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x26, 0x27}),
    CONNACK: frozenset(
        {
            0x11,
            0x12,
            0x13,
            0x15,
            0x16,
            0x1A,
            0x1C,
            0x1F,
            0x21,
            0x22,
            0x24,
            0x25,
            0x26,
            0x27,
            0x28,
            0x29,
            0x2A,
        }
    ),
    PUBLISH: frozenset({0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x23, 0x26}),
    WILL: frozenset({0x01, 0x02, 0x03, 0x08, 0x09, 0x18, 0x26}),
    PUBACK: frozenset(_ACKS),
    PUBREC: frozenset(_ACKS),
    PUBREL: frozenset(_ACKS),
    PUBCOMP: frozenset(_ACKS),
    SUBSCRIBE: frozenset({0x0B, 0x26}),
    SUBACK: frozenset(_ACKS),
    UNSUBSCRIBE: frozenset({0x26}),
    UNSUBACK: frozenset(_ACKS),
    DISCONNECT: frozenset({0x11, 0x1C, 0x1F, 0x26}),
    AUTH: frozenset({0x15, 0x16, 0x1F, 0x26}),
}
_BYTE_01 = {0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A}  # properties that are 0 or 1
Properties = dict[str, Any]  # user_property: list of (name, value); others: their value


# -- packets -------------------------------------------------------------------------------


@dataclasses.dataclass
class Will:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: Properties = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Connect:
    client_id: str
    version: int = V5
    clean_start: bool = True
    keep_alive: int = 60
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None
    properties: Properties = dataclasses.field(default_factory=dict)
    type = CONNECT


@dataclasses.dataclass
class Connack:
    reason: int = SUCCESS  # v3.1.1: the return code
    session_present: bool = False
    properties: Properties = dataclasses.field(default_factory=dict)
    type = CONNACK


@dataclasses.dataclass
class Publish:
    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None  # QoS 1 and 2 only
    properties: Properties = dataclasses.field(default_factory=dict)
    type = PUBLISH


@dataclasses.dataclass
class Ack:
    """PUBACK, PUBREC, PUBREL or PUBCOMP (``type``)."""

    type: int
    packet_id: int
    reason: int = SUCCESS
    properties: Properties = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Subscription:
    filter: str
    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0


@dataclasses.dataclass
class Subscribe:
    packet_id: int
    subscriptions: list[Subscription]
    properties: Properties = dataclasses.field(default_factory=dict)
    type = SUBSCRIBE


@dataclasses.dataclass
class Suback:
    packet_id: int
    reasons: list[int]  # granted QoS (0-2) or a failure code, per subscription
    properties: Properties = dataclasses.field(default_factory=dict)
    type = SUBACK


@dataclasses.dataclass
class Unsubscribe:
    packet_id: int
    filters: list[str]
    properties: Properties = dataclasses.field(default_factory=dict)
    type = UNSUBSCRIBE


@dataclasses.dataclass
class Unsuback:
    packet_id: int
    reasons: list[int] = dataclasses.field(default_factory=list)  # v5 only
    properties: Properties = dataclasses.field(default_factory=dict)
    type = UNSUBACK


@dataclasses.dataclass
class Pingreq:
    type = PINGREQ


@dataclasses.dataclass
class Pingresp:
    type = PINGRESP


@dataclasses.dataclass
class Disconnect:
    reason: int = SUCCESS
    properties: Properties = dataclasses.field(default_factory=dict)
    type = DISCONNECT


@dataclasses.dataclass
class Auth:
    reason: int = SUCCESS
    properties: Properties = dataclasses.field(default_factory=dict)
    type = AUTH


Packet = (
    Connect | Connack | Publish | Ack | Subscribe | Suback | Unsubscribe | Unsuback | Pingreq
    | Pingresp | Disconnect | Auth
)  # fmt: skip


# -- reading -------------------------------------------------------------------------------


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, what: str) -> bytes:
        if n > self.left():
            raise MalformedPacket(f"the packet ends inside its {what}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]

    def two(self, what: str) -> int:
        return int.from_bytes(self.take(2, what), "big")

    def four(self, what: str) -> int:
        return int.from_bytes(self.take(4, what), "big")

    def varint(self, what: str) -> int:
        value = 0
        for i in range(4):
            b = self.byte(what)
            value |= (b & 0x7F) << (7 * i)
            if not b & 0x80:
                return value
        raise MalformedPacket(f"the {what} (a variable byte integer) is longer than 4 bytes")

    def binary(self, what: str) -> bytes:
        return self.take(self.two(what), what)

    def string(self, what: str) -> str:
        return check_string(self.binary(what), what)


def check_string(raw: bytes, what: str) -> str:
    """An MQTT UTF-8 string: well-formed, no U+0000 (and no surrogates: Python refuses them)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedPacket(f"the {what} is not valid UTF-8") from None
    if "\x00" in text:
        raise MalformedPacket(f"the {what} contains U+0000, which MQTT strings may not")
    return text


def _properties(r: _Reader, ptype: int) -> Properties:
    length = r.varint("property length")
    sub = _Reader(r.take(length, "properties"))
    props: Properties = {}
    allowed = ALLOWED[ptype]
    where = "the will" if ptype == WILL else NAMES[ptype]
    while sub.left():
        pid = sub.varint("property identifier")
        if pid not in allowed:
            known = PROPERTIES.get(pid)
            what = known[0] if known else f"0x{pid:02X}"
            raise MalformedPacket(f"property {what} is not allowed in {where}", PROTOCOL_ERROR)
        name, kind = PROPERTIES[pid]
        if kind == BYTE:
            value: Any = sub.byte(name)
            if pid in _BYTE_01 and value > 1:
                raise MalformedPacket(
                    f"property {name} must be 0 or 1, got {value}", PROTOCOL_ERROR
                )
        elif kind == TWO:
            value = sub.two(name)
        elif kind == FOUR:
            value = sub.four(name)
        elif kind == VARINT:
            value = sub.varint(name)
        elif kind == STRING:
            value = sub.string(name)
        elif kind == BINARY:
            value = sub.binary(name)
        else:
            value = (sub.string(name + " name"), sub.string(name + " value"))
        if kind == PAIR or (pid == 0x0B and ptype == PUBLISH):  # these may repeat
            props.setdefault(name, []).append(value)
        elif name in props:
            raise MalformedPacket(f"property {name} appears twice in {where}", PROTOCOL_ERROR)
        else:
            props[name] = value
        if pid in (0x21, 0x27, 0x0B) and value == 0:
            raise MalformedPacket(f"property {name} may not be 0", PROTOCOL_ERROR)
    return props


def _packet_id(r: _Reader) -> int:
    pid = r.two("packet identifier")
    if pid == 0:
        raise MalformedPacket("packet identifier 0 is not allowed", PROTOCOL_ERROR)
    return pid


def check_topic_name(topic: str) -> str:
    """A PUBLISH topic name: non-empty (unless a v5 topic alias stands in), no wildcards."""
    if "+" in topic or "#" in topic:
        raise MalformedPacket(
            f"topic name {topic!r} contains a wildcard (+ or #): only filters may",
            TOPIC_NAME_INVALID,
        )
    return topic


def check_topic_filter(topic_filter: str) -> str:
    """A SUBSCRIBE/UNSUBSCRIBE filter: '#' alone and last, '+' a whole level."""
    if not topic_filter:
        raise MalformedPacket("an empty topic filter", PROTOCOL_ERROR)
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise MalformedPacket(
                f"topic filter {topic_filter!r}: '#' must be a whole level, and the last",
                PROTOCOL_ERROR,
            )
        if "+" in level and level != "+":
            raise MalformedPacket(
                f"topic filter {topic_filter!r}: '+' must be a whole level", PROTOCOL_ERROR
            )
    return topic_filter


def _decode_connect(r: _Reader) -> Connect:
    name = r.binary("protocol name")
    level = r.byte("protocol level")
    if name != b"MQTT" or level not in (V311, V5):
        if name in (b"MQTT", b"MQIsdp"):
            raise MalformedPacket(
                f"protocol level {level} is not supported: this broker speaks MQTT 3.1.1 (4) "
                "and 5.0 (5)",
                UNSUPPORTED_VERSION,
            )
        raise MalformedPacket(f"protocol name {name!r} is not MQTT", PROTOCOL_ERROR)
    flags = r.byte("connect flags")
    if flags & 0x01:
        raise MalformedPacket("the reserved CONNECT flag is set", MALFORMED)
    will_flag, will_qos, will_retain = flags & 0x04, (flags >> 3) & 3, bool(flags & 0x20)
    if will_qos == 3 or (not will_flag and (will_qos or will_retain)):
        raise MalformedPacket("invalid will QoS/retain flags in CONNECT", MALFORMED)
    has_user, has_password = bool(flags & 0x80), bool(flags & 0x40)
    if level == V311 and has_password and not has_user:
        raise MalformedPacket("MQTT 3.1.1 allows a password only with a user name", MALFORMED)
    keep_alive = r.two("keep alive")
    props = _properties(r, CONNECT) if level == V5 else {}
    client_id = r.string("client identifier")
    will = None
    if will_flag:
        will_props = _properties(r, WILL) if level == V5 else {}
        topic = check_topic_name(r.string("will topic"))
        if not topic:
            raise MalformedPacket("the will topic is empty", TOPIC_NAME_INVALID)
        will = Will(topic, r.binary("will payload"), will_qos, will_retain, will_props)
    username = r.string("user name") if has_user else None
    password = r.binary("password") if has_password else None
    if r.left():
        raise MalformedPacket(f"{r.left()} bytes after the end of CONNECT")
    return Connect(
        client_id, level, bool(flags & 0x02), keep_alive, username, password, will, props
    )


def decode(ptype: int, flags: int, body: bytes, version: int) -> Packet:
    """One packet from its type, fixed-header flags and the bytes after the fixed header."""
    expected = 0x02 if ptype in (PUBREL, SUBSCRIBE, UNSUBSCRIBE) else 0x00
    if ptype != PUBLISH and flags != expected:
        raise MalformedPacket(f"{NAMES[ptype]} with fixed-header flags {flags:#x}")
    r = _Reader(body)
    v5 = version == V5
    packet: Packet
    if ptype == CONNECT:
        return _decode_connect(r)
    if ptype == PUBLISH:
        qos = (flags >> 1) & 3
        if qos == 3:
            raise MalformedPacket("PUBLISH with QoS 3")
        dup = bool(flags & 0x08)
        if dup and qos == 0:
            raise MalformedPacket("PUBLISH with DUP set at QoS 0", PROTOCOL_ERROR)
        topic = check_topic_name(r.string("topic name"))
        pid = _packet_id(r) if qos else None
        props = _properties(r, PUBLISH) if v5 else {}
        if not topic and "topic_alias" not in props:
            raise MalformedPacket("PUBLISH with an empty topic name", TOPIC_NAME_INVALID)
        if v5 and props.get("topic_alias") == 0:
            raise MalformedPacket("topic alias 0 is not allowed", TOPIC_NAME_INVALID)
        return Publish(topic, r.take(r.left(), "payload"), qos, bool(flags & 1), dup, pid, props)
    if ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        pid = _packet_id(r)
        reason, props = SUCCESS, {}
        if v5 and r.left():
            reason = r.byte("reason code")
            if r.left():
                props = _properties(r, ptype)
        packet = Ack(ptype, pid, reason, props)
    elif ptype in (CONNACK, SUBACK, UNSUBACK):
        packet = _decode_server_ack(ptype, r, v5)
    elif ptype == SUBSCRIBE:
        pid = _packet_id(r)
        props = _properties(r, SUBSCRIBE) if v5 else {}
        subs = []
        while r.left():
            topic_filter = check_topic_filter(r.string("topic filter"))
            options = r.byte("subscription options")
            if options & (0xC0 if v5 else 0xFC) or options & 3 == 3 or (options >> 4) & 3 == 3:
                raise MalformedPacket(f"subscription options {options:#04x} are not valid")
            subs.append(
                Subscription(
                    topic_filter,
                    options & 3,
                    bool(options & 4),
                    bool(options & 8),
                    options >> 4 & 3,
                )
            )
        if not subs:
            raise MalformedPacket("SUBSCRIBE without a topic filter", PROTOCOL_ERROR)
        packet = Subscribe(pid, subs, props)
    elif ptype == UNSUBSCRIBE:
        pid = _packet_id(r)
        props = _properties(r, UNSUBSCRIBE) if v5 else {}
        filters = []
        while r.left():
            filters.append(check_topic_filter(r.string("topic filter")))
        if not filters:
            raise MalformedPacket("UNSUBSCRIBE without a topic filter", PROTOCOL_ERROR)
        packet = Unsubscribe(pid, filters, props)
    elif ptype == PINGREQ:
        packet = Pingreq()
    elif ptype == PINGRESP:
        packet = Pingresp()
    elif ptype in (DISCONNECT, AUTH):
        if not v5 and ptype == AUTH:
            raise MalformedPacket("AUTH exists in MQTT 5.0 only", PROTOCOL_ERROR)
        reason, props = SUCCESS, {}
        if v5 and r.left():
            reason = r.byte("reason code")
            if r.left():
                props = _properties(r, ptype)
        packet = Disconnect(reason, props) if ptype == DISCONNECT else Auth(reason, props)
    else:  # type 0 and anything unknown were refused by the decoder
        raise MalformedPacket(f"packet type {ptype} is reserved")
    if r.left():
        raise MalformedPacket(f"{r.left()} bytes after the end of {NAMES[ptype]}")
    return packet


def _decode_server_ack(ptype: int, r: _Reader, v5: bool) -> Packet:
    if ptype == CONNACK:
        flags = r.byte("acknowledge flags")
        if flags & 0xFE:
            raise MalformedPacket("reserved CONNACK flags are set")
        code = r.byte("reason code")
        return Connack(code, bool(flags), _properties(r, CONNACK) if v5 else {})
    pid = _packet_id(r)
    props = _properties(r, ptype) if v5 else {}
    reasons = list(r.take(r.left(), "reason codes"))
    if ptype == SUBACK:
        if not reasons:
            raise MalformedPacket("SUBACK without a reason code", PROTOCOL_ERROR)
        return Suback(pid, reasons, props)
    return Unsuback(pid, reasons, props)


class PacketDecoder:
    """Incremental decoder of one connection's byte stream.

    ``version`` is taken from the CONNECT packet (its properties and the packets after it
    depend on it); before CONNECT only CONNECT is accepted on a server (``server=True``).
    ``max_packet_size`` bounds a whole packet (fixed header included): a larger one raises
    MalformedPacket 0x95 as soon as its remaining length is read, before its bytes arrive."""

    __slots__ = ("_buf", "max_packet_size", "server", "version")

    def __init__(self, max_packet_size: int = MAX_REMAINING + 5, *, server: bool = True) -> None:
        self.max_packet_size = max_packet_size
        self.server = server
        self.version = 0
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Packet]:
        self._buf += data
        packets: list[Packet] = []
        buf = self._buf
        pos = 0
        try:
            while len(buf) - pos >= 2:
                first = buf[pos]
                ptype, flags = first >> 4, first & 0x0F
                if ptype == 0:
                    raise MalformedPacket("packet type 0 is reserved")
                if self.server and ptype in (CONNACK, SUBACK, UNSUBACK, PINGRESP):
                    raise MalformedPacket(f"a client may not send {NAMES[ptype]}", PROTOCOL_ERROR)
                if not self.server and ptype in (CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ):
                    raise MalformedPacket(f"a server may not send {NAMES[ptype]}", PROTOCOL_ERROR)
                if self.version == 0 and self.server and ptype != CONNECT:
                    raise MalformedPacket(
                        f"the first packet must be CONNECT, got {NAMES[ptype]}", PROTOCOL_ERROR
                    )
                if self.version and ptype == CONNECT:
                    raise MalformedPacket("a second CONNECT", PROTOCOL_ERROR)
                length, shift, i = 0, 0, pos + 1
                while True:
                    if i >= len(buf):
                        return packets  # the remaining length has not arrived whole
                    b = buf[i]
                    length |= (b & 0x7F) << shift
                    i += 1
                    if not b & 0x80:
                        break
                    shift += 7
                    if shift > 21:
                        raise MalformedPacket("the remaining length is longer than 4 bytes")
                total = i - pos + length
                if total > self.max_packet_size:
                    raise MalformedPacket(
                        f"a {NAMES[ptype]} of {total} bytes is larger than the maximum packet "
                        f"size of {self.max_packet_size}",
                        PACKET_TOO_LARGE,
                    )
                if len(buf) - i < length:
                    return packets
                body = bytes(buf[i : i + length])
                pos = i + length
                packet = decode(ptype, flags, body, self.version or V5)
                if isinstance(packet, Connect):
                    self.version = packet.version
                elif isinstance(packet, Connack) and not self.server and not self.version:
                    self.version = V5
                packets.append(packet)
                if self.version == 0 and self.server:
                    return packets
        finally:
            del buf[:pos]
        return packets


# -- writing -------------------------------------------------------------------------------


def varint(n: int) -> bytes:
    if not 0 <= n <= MAX_REMAINING:
        raise ValueError(f"{n} does not fit a variable byte integer")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _string(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def _binary(raw: bytes) -> bytes:
    return len(raw).to_bytes(2, "big") + raw


def encode_properties(props: Properties) -> bytes:
    out = bytearray()
    for name, value in props.items():
        pid = PROPERTY_IDS[name]
        kind = PROPERTIES[pid][1]
        values = value if kind == PAIR or (pid == 0x0B and isinstance(value, list)) else [value]
        for v in values:
            out += varint(pid)
            if kind == BYTE:
                out.append(v)
            elif kind == TWO:
                out += v.to_bytes(2, "big")
            elif kind == FOUR:
                out += v.to_bytes(4, "big")
            elif kind == VARINT:
                out += varint(v)
            elif kind == STRING:
                out += _string(v)
            elif kind == BINARY:
                out += _binary(v)
            else:
                out += _string(v[0]) + _string(v[1])
    return varint(len(out)) + bytes(out)


def encode(packet: Packet, version: int = V5) -> bytes:
    """The bytes of ``packet`` for protocol ``version`` (v5 properties left out for 3.1.1)."""
    v5 = version == V5

    def props(p: Properties) -> bytes:  # reads v5 when called: a CONNECT sets its own below
        return encode_properties(p) if v5 else b""

    flags = 0
    body = bytearray()
    if isinstance(packet, Connect):
        v5 = packet.version == V5
        body += _string("MQTT") + bytes([packet.version])
        cflags = 0x02 if packet.clean_start else 0
        will = packet.will
        if will is not None:
            cflags |= 0x04 | will.qos << 3 | (0x20 if will.retain else 0)
        cflags |= 0x80 if packet.username is not None else 0
        cflags |= 0x40 if packet.password is not None else 0
        body += bytes([cflags]) + packet.keep_alive.to_bytes(2, "big")
        body += encode_properties(packet.properties) if v5 else b""
        body += _string(packet.client_id)
        if will is not None:
            body += encode_properties(will.properties) if v5 else b""
            body += _string(will.topic) + _binary(will.payload)
        if packet.username is not None:
            body += _string(packet.username)
        if packet.password is not None:
            body += _binary(packet.password)
    elif isinstance(packet, Connack):
        body += bytes([1 if packet.session_present else 0, packet.reason])
        body += props(packet.properties)
    elif isinstance(packet, Publish):
        flags = packet.qos << 1 | (8 if packet.dup else 0) | (1 if packet.retain else 0)
        body += _string(packet.topic)
        if packet.qos:
            body += (packet.packet_id or 0).to_bytes(2, "big")
        body += props(packet.properties) + packet.payload
    elif isinstance(packet, Ack):
        flags = 0x02 if packet.type == PUBREL else 0
        body += packet.packet_id.to_bytes(2, "big")
        if v5 and (packet.reason or packet.properties):
            body.append(packet.reason)
            if packet.properties:
                body += encode_properties(packet.properties)
    elif isinstance(packet, Subscribe):
        flags = 0x02
        body += packet.packet_id.to_bytes(2, "big") + props(packet.properties)
        for s in packet.subscriptions:
            options = s.qos | s.no_local << 2 | s.retain_as_published << 3 | s.retain_handling << 4
            body += _string(s.filter) + bytes([options if v5 else s.qos])
    elif isinstance(packet, Suback | Unsuback):
        body += packet.packet_id.to_bytes(2, "big") + props(packet.properties)
        if v5 or isinstance(packet, Suback):
            body += bytes(packet.reasons)
    elif isinstance(packet, Unsubscribe):
        flags = 0x02
        body += packet.packet_id.to_bytes(2, "big") + props(packet.properties)
        for f in packet.filters:
            body += _string(f)
    elif isinstance(packet, Disconnect | Auth):
        if v5 and (packet.reason or packet.properties or isinstance(packet, Auth)):
            body.append(packet.reason)
            if packet.properties:
                body += encode_properties(packet.properties)
    elif not isinstance(packet, Pingreq | Pingresp):
        raise TypeError(f"not an MQTT packet: {packet!r}")
    return bytes([packet.type << 4 | flags]) + varint(len(body)) + bytes(body)
