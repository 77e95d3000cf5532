"""How MQTT topics, filters and properties map onto tidings topics, keys, groups and headers
(docs/mqtt.md explains the choice).

An MQTT topic name ``sensors/kitchen/temp`` is the tidings topic ``sensors`` (its first level)
with the message key ``kitchen/temp`` (the other levels; no key for a one-level name) and the
header ``mqtt-topic: sensors/kitchen/temp``. A filter's first level names the tidings topic
its messages come from; the other levels are matched against each message's MQTT topic.
A first-level wildcard (``+/status``, ``#``) reads every tidings topic but the ``_*`` ones.
``$share/GROUP/FILTER`` joins the tidings consumer group GROUP. v5 user properties are the
message's headers both ways. A name with an empty first level (``/devices/7``, common on
devices) is on the tidings topic ``mqtt-root`` (``ROOT_TOPIC``), key ``devices/7``.
"""

from __future__ import annotations

import dataclasses

from ... import headers as h
from ...errors import Forbidden, InvalidName, MessageTooLarge, NotFound, TidingsError, Unauthorized
from ...model import Delivery, Outgoing
from ...names import is_reply_topic, validate_name
from . import codec as m
from .requests import OWN_HEADERS as REQUEST_HEADERS
from .requests import parse_correlation_id, request_headers, response_properties

TOPIC_HEADER = "mqtt-topic"
QOS_HEADER = "mqtt-qos"  # the QoS an MQTT client published at: delivered at that QoS at most
RETAIN_HEADER = "mqtt-retain"  # "1": published with RETAIN (v5 Retain As Published shows it)
CLIENT_HEADER = "mqtt-client"  # the publishing client id (v5 No Local)
EXPIRY_HEADER = "mqtt-expiry"  # the v5 Message Expiry Interval it was published with
# headers the front-end sets itself: not passed back as user properties
OWN_HEADERS = frozenset(
    {TOPIC_HEADER, QOS_HEADER, RETAIN_HEADER, CLIENT_HEADER, EXPIRY_HEADER, *REQUEST_HEADERS}
)
ROOT_TOPIC = "mqtt-root"  # the tidings topic of MQTT names with an empty first level ("/a/b")
INTERNAL_PREFIX = "_mqtt."  # the front-end's own topics (retained messages): not MQTT topics


def split_topic(topic: str) -> tuple[str, str | None]:
    """(tidings topic, key) of an MQTT topic name; MalformedPacket 0x90 when its first level
    is not a tidings topic name (``$`` topics, reply topics, other characters). An empty
    first level is :data:`ROOT_TOPIC`."""
    first, _, rest = topic.partition("/")
    if not first and topic:
        return ROOT_TOPIC, rest or None
    try:
        validate_name("topic", first)
    except InvalidName as exc:
        raise m.MalformedPacket(
            f"MQTT topic {topic!r}: its first level is the tidings topic, and {exc.message}",
            m.TOPIC_NAME_INVALID,
        ) from None
    if is_reply_topic(first) or first.startswith(INTERNAL_PREFIX):
        raise m.MalformedPacket(
            f"MQTT topic {topic!r}: reply topics and the MQTT front-end's own {INTERNAL_PREFIX}* "
            "topics are not reachable over MQTT",
            m.TOPIC_NAME_INVALID,
        )
    return first, rest or None


def to_outgoing(packet: m.Publish, client_id: str | None = None) -> Outgoing:
    """The tidings message of an MQTT PUBLISH (v5 user properties become headers)."""
    headers = {name: value for name, value in packet.properties.get("user_property", ())}
    headers[TOPIC_HEADER] = packet.topic
    headers[QOS_HEADER] = str(packet.qos)
    if client_id:
        headers[CLIENT_HEADER] = client_id
    if packet.retain:
        headers[RETAIN_HEADER] = "1"
    content_type = packet.properties.get("content_type")
    if content_type is not None:
        headers.setdefault("content-type", content_type)
    expiry = packet.properties.get("message_expiry_interval")
    if expiry:
        headers[EXPIRY_HEADER] = str(expiry)
    if packet.properties:
        response_topic = packet.properties.get("response_topic")
        reply_to = None
        if response_topic is not None:
            try:
                reply_to = split_topic(response_topic)[0]
            except m.MalformedPacket:
                pass  # not a tidings topic: passed to MQTT subscribers only
        request_headers(packet.properties, reply_to, headers)
    if is_reply_topic(packet.topic):  # an MQTT client answers a tidings request
        data = packet.properties.get("correlation_data")
        if data is not None:
            headers.setdefault(h.CORRELATION_ID, data.decode("utf-8", "replace"))
        headers.setdefault(h.MESSAGE_TYPE, "reply")
        key = None
    else:
        _, key = split_topic(packet.topic)
    return Outgoing(packet.payload, key, headers, None, float(expiry) if expiry else None)


def mqtt_topic(delivery: Delivery) -> str:
    """The MQTT topic name of a tidings message: its ``mqtt-topic`` header when an MQTT client
    published it, else the tidings topic with the key as the further levels."""
    topic = delivery.headers.get(TOPIC_HEADER)
    if topic:
        return topic
    reply = parse_correlation_id(delivery.headers.get(h.CORRELATION_ID))
    if reply is not None and _tidings_topic(reply[0]) == delivery.topic:
        return reply[0]  # a service's reply to an MQTT request: to its response topic
    if delivery.topic == ROOT_TOPIC:  # a service's message there: an empty first level
        return f"/{delivery.key or ''}"
    return f"{delivery.topic}/{delivery.key}" if delivery.key else delivery.topic


def _tidings_topic(mqtt_topic: str) -> str | None:
    try:
        return split_topic(mqtt_topic)[0]
    except m.MalformedPacket:
        return None


def to_publish(
    delivery: Delivery,
    qos: int,
    packet_id: int | None,
    version: int,
    retain: bool = False,
    expiry: int | None = None,
) -> m.Publish:
    props: m.Properties = {}
    if version == m.V5:
        if expiry is not None:  # 5.0 §3.3.2.3.3: the lifetime left
            props["message_expiry_interval"] = expiry
        used = response_properties(delivery.headers, props)
        # content-type is the v5 content type property, not a user property as well
        pairs = [
            (k, v)
            for k, v in delivery.headers.items()
            if k not in OWN_HEADERS and k != "content-type" and k not in used
        ]
        if pairs:
            props["user_property"] = pairs
        if "content-type" in delivery.headers:
            props["content_type"] = delivery.headers["content-type"]
    return m.Publish(mqtt_topic(delivery), delivery.body, qos, retain, False, packet_id, props)


def expiry_left(delivery: Delivery, now: float) -> int | None:
    """Whole seconds left of the v5 Message Expiry Interval the message was published with
    (None: none; 0 or less: expired, not to be sent, 5.0 §3.3.2.3.3)."""
    interval = delivery.headers.get(EXPIRY_HEADER)
    if interval is None or not interval.isdigit():
        return None
    left = int(interval) - (now - delivery.timestamp)
    return int(left) if left >= 1 or left <= 0 else 1


def was_retained(delivery: Delivery) -> bool:
    return delivery.headers.get(RETAIN_HEADER) == "1"


def delivered_qos(delivery: Delivery, granted: int) -> int:
    """The QoS of a delivery: the subscription's, or the publisher's if less (MQTT 5.0
    §3.8.4; a message of a tidings service has no QoS of its own)."""
    published = delivery.headers.get(QOS_HEADER)
    if published in ("0", "1"):
        return min(int(published), granted)
    return granted


WILDCARDS = ("+", "#")
HIDDEN_PREFIX = "_"  # tidings topics a first-level wildcard does not match (see ``covers``)


@dataclasses.dataclass(frozen=True)
class Filter:
    """A parsed SUBSCRIBE filter: the tidings topic ("" for a first-level wildcard, which
    spans topics), the levels to match after the first, the consumer group of
    ``$share/GROUP/...`` (None: a private subscription)."""

    text: str  # as the client wrote it (the key of UNSUBSCRIBE)
    topic: str
    levels: tuple[str, ...]
    share: str | None = None
    first: str | None = None  # the first level as written ("" for /..., + or #; None: topic)

    @property
    def spans_topics(self) -> bool:
        """A first-level wildcard (``+/status``, ``#``): it reads many tidings topics."""
        return self.first in WILDCARDS

    def covers(self, topic: str) -> bool:
        """Whether messages of the tidings topic may match. A first-level wildcard covers
        every topic but those starting with ``_`` (reply topics, the front-end's ``_mqtt.*``,
        the registry's ``_tidings.*``): they are to tidings what ``$`` topics are to MQTT,
        which wildcards do not match either (MQTT 5.0 §4.7.2); a filter naming one reads it."""
        if self.first == "#" or self.first == "+":
            return not topic.startswith(HIDDEN_PREFIX)
        return topic == self.topic

    def matches(self, mqtt_topic: str) -> bool:
        first, *have = mqtt_topic.split("/")
        wanted = self.topic if self.first is None else self.first
        if wanted == "#":
            return not first.startswith("$")
        if wanted == "+":
            if first.startswith("$"):
                return False
        elif first != wanted:
            return False  # mqtt-root holds "/..." names and "mqtt-root/..." ones
        for i, level in enumerate(self.levels):
            if level == "#":
                return True
            if i >= len(have) or (level != "+" and level != have[i]):
                return False
        return len(have) == len(self.levels)


def parse_filter(text: str) -> Filter:
    """MalformedPacket (0x8F) for what is not served."""
    share = None
    body = text
    if text.startswith("$share/"):
        _, group, *rest = text.split("/", 2)
        if not rest or not group or "+" in group or "#" in group:
            raise m.MalformedPacket(
                f"shared subscription {text!r}: write $share/GROUP/FILTER", m.TOPIC_FILTER_INVALID
            )
        try:
            share = validate_name("group", group)
        except InvalidName as exc:
            raise m.MalformedPacket(exc.message, m.TOPIC_FILTER_INVALID) from None
        body = rest[0]
    m.check_topic_filter(body)
    first, *levels = body.split("/")
    if first in WILDCARDS:
        return Filter(text, "", tuple(levels), share, first)
    if first.startswith("$"):
        raise m.MalformedPacket(
            f"topic filter {text!r}: this broker serves no $ topics", m.TOPIC_FILTER_INVALID
        )
    try:
        topic, _ = split_topic(body)
    except m.MalformedPacket as exc:
        raise m.MalformedPacket(str(exc), m.TOPIC_FILTER_INVALID) from None
    return Filter(text, topic, tuple(levels), share, None if first else "")


def reason_of(exc: TidingsError) -> int:
    """The MQTT 5 reason code of a tidings error."""
    if isinstance(exc, Forbidden | Unauthorized):
        return m.NOT_AUTHORIZED
    if isinstance(exc, MessageTooLarge):
        return m.PACKET_TOO_LARGE
    if isinstance(exc, NotFound):
        return m.TOPIC_NAME_INVALID
    if exc.code == 441 or exc.code == 440:  # Overloaded, TopicFull
        return m.QUOTA_EXCEEDED
    return m.IMPLEMENTATION_SPECIFIC
