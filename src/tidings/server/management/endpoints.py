"""A small typed-endpoint layer over Starlette: each :class:`Endpoint` names its method, path,
query parameters, body type and response type (msgspec Structs, the same models the protocol
carries), so one declaration gives the route, the input checks and the OpenAPI entry
(``openapi.py``).

Every failure is an error of the one catalogue (``tidings.errors``) answered with its HTTP
status and a JSON body ``{"error", "code", "message"}``: bad JSON, a body of the wrong shape,
an oversize body, a bad query parameter, an unknown path or method are 4xx; anything else
that escapes a handler is logged and answered 500 (the fuzz test holds that to never).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.responses import Response
from starlette.routing import Route

from ...errors import BadRequest, InvalidPayload, MessageTooLarge, NotFound, TidingsError
from ..auth import User
from .access import authenticate, refuse_cross_site

if TYPE_CHECKING:
    from starlette.requests import Request

    from ..app import BrokerServer

log = logging.getLogger("tidings.server")

MAX_BODY = 16 * 1024 * 1024  # bytes of a request body at most (the broker's limit is lower)


class ErrorBody(msgspec.Struct):
    """Every error answer: the catalogue's name and stable code, and what to do."""

    error: str
    code: int
    message: str


@dataclasses.dataclass(frozen=True)
class Query:
    name: str
    kind: type  # int or str
    default: Any
    description: str
    minimum: int | None = None


@dataclasses.dataclass
class Call:
    server: BrokerServer
    request: Request
    user: User | None
    path: dict[str, str]
    query: dict[str, Any]
    body: Any


@dataclasses.dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    summary: str
    tag: str
    handler: Callable[[Call], Awaitable[Any]]
    response: Any = None  # a type for the schema; None: no content
    body: Any = None  # a msgspec type the JSON body must decode to
    status: int = 200
    query: tuple[Query, ...] = ()
    optional_body: bool = False  # an empty body decodes as the body type's defaults
    media_type: str = "application/json"  # of the answer (text/event-stream: a stream of it)


def error_response(exc: TidingsError, status: int | None = None) -> Response:
    body = ErrorBody(type(exc).__name__, exc.code, exc.message)
    headers = {"WWW-Authenticate": 'Basic realm="tidings"'} if exc.http_status == 401 else None
    return Response(
        msgspec.json.encode(body),
        status_code=status or exc.http_status,
        media_type="application/json",
        headers=headers,
    )


def parse_query(spec: tuple[Query, ...], request: Request) -> dict[str, Any]:
    values: dict[str, Any] = {}
    params = request.query_params
    for q in spec:
        raw = params.get(q.name)
        if raw is None:
            values[q.name] = q.default
            continue
        if q.kind is int:
            try:
                value: Any = int(raw)
            except ValueError:
                raise BadRequest(
                    f"query parameter {q.name} must be an integer, got {raw!r}"
                ) from None
            if q.minimum is not None and value < q.minimum:
                raise BadRequest(f"query parameter {q.name} must be >= {q.minimum}, got {value}")
        else:
            value = raw
        values[q.name] = value
    return values


async def _read_body(request: Request, kind: Any, optional: bool = False) -> Any:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise MessageTooLarge(f"the request body is over {MAX_BODY} bytes: send less")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        if optional:
            raw = b"{}"
        else:
            raise BadRequest("this request needs a JSON body (Content-Type: application/json)")
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise InvalidPayload(f"the JSON body does not have the expected shape: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc


def _encode(result: Any) -> bytes:
    return msgspec.json.encode(result)


def _run(server: BrokerServer, endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        try:
            refuse_cross_site(request)
            user = await authenticate(server, request)
            query = parse_query(endpoint.query, request)
            body = (
                await _read_body(request, endpoint.body, endpoint.optional_body)
                if endpoint.body is not None
                else None
            )
            call = Call(server, request, user, dict(request.path_params), query, body)
            result = await endpoint.handler(call)
            if endpoint.response is None:
                return Response(status_code=endpoint.status)
            return Response(
                _encode(result), status_code=endpoint.status, media_type="application/json"
            )
        except TidingsError as exc:
            return error_response(exc)
        except Exception as exc:
            log.exception("HTTP %s %s failed", request.method, request.url.path)
            return error_response(TidingsError(f"internal error: {type(exc).__name__}: {exc}"))

    return run


def routes(server: BrokerServer, endpoints: list[Endpoint]) -> list[Route]:
    """One Starlette route per path, dispatching by method (an unknown method is a JSON 405)."""
    by_path: dict[str, dict[str, Callable[[Request], Awaitable[Response]]]] = {}
    for ep in endpoints:
        by_path.setdefault(ep.path, {})[ep.method] = _run(server, ep)
    out = []
    for path, methods in by_path.items():

        async def dispatch(
            request: Request,
            methods: dict[str, Callable[[Request], Awaitable[Response]]] = methods,
        ) -> Response:
            handler = methods.get(request.method)
            if handler is None:
                allowed = ", ".join(sorted(methods))
                return error_response(
                    BadRequest(f"method {request.method} is not allowed here: use {allowed}"), 405
                )
            return await handler(request)

        verbs = [*methods, "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE", "GET"]
        out.append(Route(path, dispatch, methods=sorted(set(verbs))))
    return out


async def not_found(request: Request) -> Response:
    return error_response(
        NotFound(f"no such API path {request.url.path!r}: see /api/v1/openapi.json")
    )
