"""The OpenAPI 3.1 document of ``/api/v1``, built from the endpoint declarations: paths,
query and path parameters, request bodies and responses, with the msgspec models' JSON
schemas as components (``msgspec.json.schema_components``)."""

from __future__ import annotations

import re
from typing import Any, get_origin

import msgspec

from .endpoints import Endpoint, ErrorBody

_PATH_PARAM = re.compile(r"{([a-z_]+)}")
_STATUS_TEXT = {200: "OK", 201: "Created", 204: "No content"}
_ERRORS = {
    "400": "Bad request (the message says what was wrong)",
    "401": "Authentication needed or failed",
    "403": "The user lacks the right (the message names it)",
    "404": "No such topic, group, message or path",
    "422": "The JSON body does not have the expected shape",
}


def document(endpoints: list[Endpoint], version: str) -> dict[str, Any]:
    types: list[Any] = [ErrorBody]
    for ep in endpoints:
        for t in (ep.response, ep.body):
            if t is not None:
                types.append(t)
    schemas, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    schema_of = dict(zip(map(_key, types), schemas, strict=True))
    error = {"application/json": {"schema": schema_of[_key(ErrorBody)]}}
    paths: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        op: dict[str, Any] = {
            "summary": ep.summary,
            "operationId": _operation_id(ep),
            "tags": [ep.tag],
            "parameters": [
                {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                for n in _PATH_PARAM.findall(ep.path)
            ]
            + [
                {
                    "name": q.name,
                    "in": "query",
                    "required": False,
                    "description": q.description,
                    "schema": {
                        "type": "integer" if q.kind is int else "string",
                        **({"minimum": q.minimum} if q.minimum is not None else {}),
                    },
                }
                for q in ep.query
            ],
            "responses": {
                str(ep.status): {
                    "description": _STATUS_TEXT.get(ep.status, "OK"),
                    **(
                        {"content": {ep.media_type: {"schema": schema_of[_key(ep.response)]}}}
                        if ep.response is not None
                        else {}
                    ),
                },
                **{code: {"description": text, "content": error} for code, text in _ERRORS.items()},
            },
        }
        if ep.body is not None:
            op["requestBody"] = {
                "required": not ep.optional_body,
                "content": {"application/json": {"schema": schema_of[_key(ep.body)]}},
            }
        paths.setdefault(ep.path, {})[ep.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tidings broker management API",
            "version": version,
            "description": "Topics, groups, messages and connections of one tidings broker "
            "(docs/operations.md). Authenticate with Bearer <token> or Basic user:password "
            "from the broker's users file.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
            },
        },
        "security": [{"bearer": []}, {"basic": []}, {}],
    }


def _key(t: Any) -> str:
    return repr(t) if get_origin(t) is not None else f"{t.__module__}.{t.__qualname__}"


def _operation_id(ep: Endpoint) -> str:
    words = [w.strip("{}") for w in ep.path.split("/")[3:]]
    return ep.method.lower() + "_" + "_".join(w.replace("-", "_") for w in words if w)
