"""AsyncAPI 3.0 export of a service: channels, operations and message schemas.

``export(svc, format="json" | "yaml")`` returns the document as text; ``document(svc)`` as a
dict. Every handler is a ``receive`` operation on its topic's channel; every responder also
has a ``reply`` (address: the ``reply-to`` header); every ``svc.emits(...)`` declaration is a
``send`` operation. Payload schemas come from the pydantic types of the handlers and go to
``components.schemas``; the ``tidings`` CLI calls this as ``tidings asyncapi module:svc``.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Literal

from .. import headers as h
from ..errors import BadRequest
from .codecs import OCTET_STREAM
from .payloads import PayloadType

if TYPE_CHECKING:
    from .app import Service

ASYNCAPI_VERSION = "3.0.0"
REF_TEMPLATE = "#/components/schemas/{model}"
_KEY_RE = re.compile(r"[^\w.\-]")


def _key(name: str) -> str:
    """A components key (AsyncAPI allows letters, digits, '.', '-' and '_')."""
    return _KEY_RE.sub("_", name) or "_"


def _pointer(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


class _Builder:
    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.schemas: dict[str, Any] = {}
        self.messages: dict[str, Any] = {}
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}

    def payload_schema(self, payload: PayloadType) -> tuple[dict[str, Any], str]:
        """The message payload schema (a $ref for models) and its content type."""
        if payload.kind == "bytes":
            return {"type": "string", "format": "binary"}, OCTET_STREAM
        if payload.kind == "message":
            return {}, OCTET_STREAM
        schema = dict(payload.json_schema(REF_TEMPLATE) or {})
        for name, sub in schema.pop("$defs", {}).items():
            self.schemas[_key(name)] = sub
        annotation = payload.annotation
        if isinstance(annotation, type) and schema.get("type") == "object" and "title" in schema:
            key = _key(annotation.__name__)
            self.schemas[key] = schema
            schema = {"$ref": f"#/components/schemas/{key}"}
        return schema, self.svc.codec.content_type

    def message(self, payload: PayloadType, kind: str, name: str | None = None) -> str:
        schema, content_type = self.payload_schema(payload)
        key = _key(name or payload.name)
        headers: dict[str, Any] = {
            h.CONTENT_TYPE: {"type": "string", "const": content_type},
            h.MESSAGE_TYPE: {"type": "string", "const": kind},
            h.TRACEPARENT: {"type": "string", "description": "W3C trace context"},
        }
        message: dict[str, Any] = {
            "name": key,
            "title": f"{payload.name} ({kind})",
            "contentType": content_type,
            "payload": schema,
            "headers": {"type": "object", "properties": headers},
        }
        if kind in ("request", "reply"):
            headers[h.CORRELATION_ID] = {"type": "string"}
            message["correlationId"] = {"location": f"$message.header#/{h.CORRELATION_ID}"}
        if kind == "request":
            headers[h.REPLY_TO] = {"type": "string", "description": "the requester's reply topic"}
        if self.messages.get(key, message) != message:  # same name, another shape
            key = _key(f"{key}.{kind}")
            message["name"] = key
        self.messages[key] = message
        return key

    def channel(self, channel_id: str, address: str | None, message_key: str) -> str:
        channel = self.channels.setdefault(channel_id, {"address": address, "messages": {}})
        channel["messages"][message_key] = {"$ref": f"#/components/messages/{message_key}"}
        return channel_id

    def operation(self, op_id: str, body: dict[str, Any]) -> None:
        key, n = _key(op_id), 2
        while key in self.operations:
            key, n = _key(f"{op_id}_{n}"), n + 1
        self.operations[key] = body

    def ref_message(self, channel_id: str, message_key: str) -> dict[str, str]:
        return {"$ref": f"#/channels/{_pointer(channel_id)}/messages/{message_key}"}

    def build(self) -> dict[str, Any]:
        for handler in self.svc.handlers:
            kind = "request" if handler.responder else "event"
            msg = self.message(handler.payload, kind)
            chan = self.channel(handler.topic, handler.topic, msg)
            op: dict[str, Any] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{_pointer(chan)}"},
                "messages": [self.ref_message(chan, msg)],
                "x-tidings-group": handler.group,
                "x-tidings-mode": handler.mode,
                "x-tidings-idempotent": handler.idempotent,
            }
            if handler.description:
                op["summary"] = handler.description.splitlines()[0]
                op["description"] = handler.description
            if handler.responder and handler.returns is not None:
                reply_msg = self.message(handler.returns, "reply")
                reply_chan = self.channel(f"{handler.topic}.reply", None, reply_msg)
                op["reply"] = {
                    "address": {
                        "location": f"$message.header#/{h.REPLY_TO}",
                        "description": "the requester's temporary reply topic",
                    },
                    "channel": {"$ref": f"#/channels/{_pointer(reply_chan)}"},
                    "messages": [self.ref_message(reply_chan, reply_msg)],
                }
            self.operation(handler.name, op)
        for emitted in self.svc.emitted:
            msg = self.message(emitted.payload, emitted.kind)
            chan = self.channel(emitted.topic, emitted.topic, msg)
            op = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{_pointer(chan)}"},
                "messages": [self.ref_message(chan, msg)],
            }
            if emitted.description:
                op["description"] = emitted.description
            self.operation(f"publish.{emitted.topic}.{msg}", op)
        return self.document()

    def document(self) -> dict[str, Any]:
        info: dict[str, Any] = {"title": self.svc.name, "version": self.svc.version}
        if self.svc.description:
            info["description"] = self.svc.description
        doc: dict[str, Any] = {
            "asyncapi": ASYNCAPI_VERSION,
            "info": info,
            "defaultContentType": self.svc.codec.content_type,
        }
        url = self.svc.url
        if url and "://" in url:
            scheme, _, rest = url.partition("://")
            doc["servers"] = {
                "default": {"host": rest.split("/", 1)[0] or "localhost", "protocol": scheme}
            }
        doc["channels"] = self.channels
        doc["operations"] = self.operations
        doc["components"] = {"schemas": self.schemas, "messages": self.messages}
        return doc


def document(svc: Service) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``svc`` as a dict."""
    return _Builder(svc).build()


def export(svc: Service, format: Literal["json", "yaml"] = "json") -> str:
    """The AsyncAPI 3.0 document of ``svc`` as JSON or YAML text."""
    doc = document(svc)
    if format == "json":
        return json.dumps(doc, indent=2) + "\n"
    if format == "yaml":
        try:
            import yaml
        except ImportError as exc:
            raise RuntimeError("YAML output needs PyYAML: pip install pyyaml") from exc
        return str(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    raise BadRequest(f"format must be 'json' or 'yaml', got {format!r}")
