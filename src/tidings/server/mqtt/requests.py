"""MQTT 5 request/response (§4.10: Response Topic, Correlation Data) and the Payload Format
Indicator, as tidings headers, so that an MQTT client and a tidings service answer each other.

A v5 PUBLISH keeps its properties in headers, passed back unchanged to MQTT subscribers:
``mqtt-response-topic``, ``mqtt-correlation`` (the correlation data, base64) and
``mqtt-format: 1`` (a UTF-8 payload). It also gets tidings' own request headers, so that a
tidings responder (``Service`` request handlers, ``client.reply``) answers it: ``reply-to``
is the tidings topic of the response topic (its first level) and ``correlation-id`` is
``mqtt:<response topic>.<correlation data>``, both base64url. A tidings reply carries that
correlation id back, which is all the front-end needs to deliver it, stateless and across
restarts: to the response topic (not merely its first level), with the correlation data.
A request of a tidings client reaches MQTT subscribers with its ``reply-to`` as the Response
Topic and its ``correlation-id`` as the Correlation Data. A broker-named ``_reply.*`` topic is
not otherwise reachable over MQTT: the client a request was delivered to may publish one
reply there (``MqttConnection.grant_reply``), whose Correlation Data becomes its
``correlation-id``.
"""

from __future__ import annotations

import base64
import binascii

from ... import headers as h
from ...names import is_reply_topic
from . import codec as m

RESPONSE_TOPIC_HEADER = "mqtt-response-topic"
CORRELATION_HEADER = "mqtt-correlation"  # the v5 Correlation Data, base64
FORMAT_HEADER = "mqtt-format"  # "1": the v5 Payload Format Indicator said UTF-8
REQUEST_PREFIX = "mqtt:"  # a correlation id the front-end made for an MQTT request
OWN_HEADERS = frozenset({RESPONSE_TOPIC_HEADER, CORRELATION_HEADER, FORMAT_HEADER})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def correlation_id(response_topic: str, data: bytes | None) -> str:
    return f"{REQUEST_PREFIX}{_b64(response_topic.encode())}.{_b64(data or b'')}"


def parse_correlation_id(value: str | None) -> tuple[str, bytes] | None:
    """The response topic and correlation data of a correlation id made by
    :func:`correlation_id` (None for any other)."""
    if not value or not value.startswith(REQUEST_PREFIX):
        return None
    topic, sep, data = value[len(REQUEST_PREFIX) :].partition(".")
    if not sep:
        return None
    try:
        return _unb64(topic).decode(), _unb64(data)
    except (binascii.Error, ValueError):
        return None


def request_headers(props: m.Properties, reply_to: str | None, headers: dict[str, str]) -> None:
    """Add the headers of a v5 PUBLISH's properties; ``reply_to``: the tidings topic of its
    response topic (None: not a tidings topic; the properties still pass to MQTT)."""
    response_topic = props.get("response_topic")
    data = props.get("correlation_data")
    if data is not None:
        headers[CORRELATION_HEADER] = base64.b64encode(data).decode()
    if props.get("payload_format_indicator"):
        headers[FORMAT_HEADER] = "1"
    if response_topic is None:
        return
    headers[RESPONSE_TOPIC_HEADER] = response_topic
    if reply_to is not None and h.REPLY_TO not in headers:
        headers[h.REPLY_TO] = reply_to
        headers.setdefault(h.CORRELATION_ID, correlation_id(response_topic, data))


def response_properties(headers: dict[str, str], props: m.Properties) -> set[str]:
    """Set the v5 properties of a message to an MQTT client from its headers; returns the
    headers they stand for (not to be sent again as user properties)."""
    used = set()
    if headers.get(FORMAT_HEADER) == "1":
        props["payload_format_indicator"] = 1
    encoded = headers.get(CORRELATION_HEADER)
    if encoded is not None:  # published by an MQTT client: as it was
        try:
            props["correlation_data"] = base64.b64decode(encoded)
        except (binascii.Error, ValueError):
            pass
    reply = parse_correlation_id(headers.get(h.CORRELATION_ID))
    if reply is not None:  # made for an MQTT request (the request, or a service's reply)
        used.add(h.CORRELATION_ID)
        if reply[1] and encoded is None:
            props["correlation_data"] = reply[1]
    response_topic = headers.get(RESPONSE_TOPIC_HEADER)
    if response_topic is not None:  # an MQTT client's request
        props["response_topic"] = response_topic
        used.add(h.REPLY_TO)
        return used
    reply_to = headers.get(h.REPLY_TO)
    # a tidings client's request (its reply topic: answered by the client it is delivered to)
    if reply_to and (not reply_to.startswith("_") or is_reply_topic(reply_to)):
        props["response_topic"] = reply_to
        used.add(h.REPLY_TO)
        cid = headers.get(h.CORRELATION_ID)
        if cid is not None and reply is None and encoded is None:
            props["correlation_data"] = cid.encode()
            used.add(h.CORRELATION_ID)
    return used
