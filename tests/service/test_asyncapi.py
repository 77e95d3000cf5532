"""AsyncAPI 3.0 export.

The document is validated against ``asyncapi-3.0-subset.schema.json``: the official AsyncAPI
3.0.0 JSON Schema cannot be downloaded at test time (no network), so that file is a faithful
subset of it (github.com/asyncapi/spec-json-schemas, definitions/3.0.0) covering every object
tidings emits, with the official required fields, enums, patterns and closed property sets.
Every ``$ref`` in the document must also resolve inside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

import tidings
from tidings.service import asyncapi

SCHEMA = json.loads((Path(__file__).parent / "asyncapi-3.0-subset.schema.json").read_text())


class Money(BaseModel):
    amount: float
    currency: str = "EUR"


class OrderRefunded(BaseModel):
    order_id: str
    refund: Money


class StatusQuery(BaseModel):
    order_id: str


class RefundStatus(BaseModel):
    order_id: str
    state: str


def make_service() -> tidings.Service:
    svc = tidings.Service("payment", url="tidings://127.0.0.1:7420", description="Payments")

    @svc.on("order.refunded", idempotent=True, concurrency=8)
    async def refund(event: OrderRefunded, ctx: tidings.Context) -> None:
        """Refund an order.

        Longer description."""

    @svc.reply("payment.status")
    async def status(query: StatusQuery) -> RefundStatus: ...

    @svc.on("audit.raw", mode="ordered")
    async def audit(body: bytes) -> None: ...

    @svc.on("counts")
    async def counts(values: list[int]) -> None: ...

    svc.emits("payment.refunded", OrderRefunded, description="after a refund")
    return svc


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for token in ref[2:].split("/"):
        node = node[token.replace("~1", "/").replace("~0", "~")]
    return node


def refs(node: Any):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def test_document_validates_against_asyncapi_3():
    doc = asyncapi.document(make_service())
    jsonschema.Draft7Validator(SCHEMA).validate(doc)
    for ref in refs(doc):
        resolve(doc, ref)


def test_channels_operations_and_schemas():
    doc = asyncapi.document(make_service())
    assert doc["asyncapi"] == "3.0.0" and doc["info"]["title"] == "payment"
    assert doc["servers"]["default"] == {"host": "127.0.0.1:7420", "protocol": "tidings"}
    assert doc["channels"]["order.refunded"]["address"] == "order.refunded"
    ops = doc["operations"]
    assert ops["refund"]["action"] == "receive" and ops["refund"]["summary"] == "Refund an order."
    assert ops["refund"]["x-tidings-group"] == "payment" and ops["refund"]["x-tidings-idempotent"]
    sends = [op for op in ops.values() if op["action"] == "send"]
    assert len(sends) == 1 and sends[0]["channel"] == {"$ref": "#/channels/payment.refunded"}
    schemas = doc["components"]["schemas"]
    assert set(schemas["OrderRefunded"]["properties"]) == {"order_id", "refund"}
    assert schemas["OrderRefunded"]["properties"]["refund"] == {
        "$ref": "#/components/schemas/Money"
    }
    assert "Money" in schemas
    raw = resolve(doc, ops["audit"]["messages"][0]["$ref"])
    assert resolve(doc, raw["$ref"])["contentType"] == "application/octet-stream"
    counts = resolve(doc, resolve(doc, ops["counts"]["messages"][0]["$ref"])["$ref"])
    assert counts["payload"]["type"] == "array"
    assert counts["payload"]["items"] == {"type": "integer"}


def test_responder_has_a_reply_on_the_reply_to_header():
    doc = asyncapi.document(make_service())
    reply = doc["operations"]["status"]["reply"]
    assert reply["address"]["location"] == "$message.header#/reply-to"
    reply_channel = resolve(doc, reply["channel"]["$ref"])
    assert reply_channel["address"] is None
    message = resolve(doc, resolve(doc, reply["messages"][0]["$ref"])["$ref"])
    assert message["payload"] == {"$ref": "#/components/schemas/RefundStatus"}
    assert message["correlationId"]["location"] == "$message.header#/correlation-id"


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_export_text_formats(fmt):
    svc = make_service()
    text = asyncapi.export(svc, format=fmt)
    loaded = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    assert loaded == asyncapi.document(svc)
    jsonschema.Draft7Validator(SCHEMA).validate(loaded)


def test_subset_schema_rejects_what_asyncapi_rejects():
    doc = asyncapi.document(make_service())
    broken = json.loads(json.dumps(doc))
    broken["operations"]["refund"]["action"] = "consume"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)
    del doc["info"]["version"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, SCHEMA)
