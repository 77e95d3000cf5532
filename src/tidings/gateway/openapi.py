"""``/openapi.json`` (OpenAPI 3.1) and ``/docs`` (a plain HTML page) built from the route
table: each route's request and response schemas are the JSON Schemas of its handler's
types, as the services advertise them."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from .routes import RouteTable

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _lift(schema: dict[str, Any] | None, components: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` moved to ``components/schemas`` (refs rewritten)."""
    if not schema:
        return {}
    schema = json.loads(json.dumps(schema))
    defs = schema.pop("$defs", {}) or {}

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                node["$ref"] = "#/components/schemas/" + ref[len("#/$defs/") :]
            for value in node.values():
                rewrite(value)
        elif isinstance(node, list):
            for value in node:
                rewrite(value)
        return node

    for name, sub in defs.items():
        components[name] = rewrite(sub)
    rewrite(schema)  # in place
    return schema


def openapi(table: RouteTable, title: str = "tidings gateway") -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    components: dict[str, Any] = {}
    for route in table:
        op: dict[str, Any] = {
            "operationId": f"{route.topic}.{route.method.lower()}",
            "summary": route.description or f"{route.service}: {route.topic}",
            "tags": [route.service],
        }
        params = _PARAM.findall(route.path)
        if params:
            op["parameters"] = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                for p in params
            ]
        request = _lift(route.schema, components)
        if route.method != "GET":
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": request or {}}},
            }
        errors = {
            "422": {"description": "the request does not fit the schema"},
            "429": {"description": "rate limited"},
            "503": {"description": "the service is unavailable (Retry-After)"},
        }
        if route.kind == "command":
            op["responses"] = {
                "202": {
                    "description": "accepted: published, processed later",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "id": {"type": "string"},
                                    "status": {"type": "string"},
                                    "location": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                **errors,
            }
        else:
            op["responses"] = {
                "200": {
                    "description": "the reply",
                    "content": {
                        "application/json": {"schema": _lift(route.returns, components) or {}}
                    },
                },
                "504": {"description": "no reply within the route's timeout"},
                **errors,
            }
        paths.setdefault(route.path, {})[route.method.lower()] = op
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1"},
        "paths": paths,
    }
    if components:
        doc["components"] = {"schemas": components}
    return doc


def docs_page(table: RouteTable, title: str = "tidings gateway") -> str:
    rows = []
    for route in table:
        schema = json.dumps(route.schema or {}, indent=2)
        returns = json.dumps(route.returns or {}, indent=2)
        answer = "202 Accepted" if route.kind == "command" else "200 with the reply"
        reply = f"<h3>Reply</h3><pre>{html.escape(returns)}</pre>"
        if route.kind == "command":
            reply = ""
        rows.append(
            f"<section><h2><code>{html.escape(route.key)}</code></h2>"
            f"<p>service <b>{html.escape(route.service)}</b>, topic "
            f"<code>{html.escape(route.topic)}</code>, version "
            f"{html.escape(route.version or '-')}: {answer}</p>"
            f"<h3>Request</h3><pre>{html.escape(schema)}</pre>"
            f"{reply}</section>"
        )
    body = "".join(rows) or "<p>No routes yet: no running service declares <code>http=</code>.</p>"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "</head><body>"
        f"<h1>{html.escape(title)}</h1><p><a href='/openapi.json'>/openapi.json</a></p>"
        f"{body}</body></html>"
    )
