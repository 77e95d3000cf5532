"""``GET /api/v1/events``: the overview (counters, rates, depth, alarms) as a stream of
Server-Sent Events, one ``overview`` event per interval (1 s by default, ``?interval=`` from
0.2 to 60 s), so a dashboard or a script follows the broker live without polling. Each event's
``data`` is the JSON of ``GET /api/v1/overview``. Same right as the overview (``monitor``).
The stream ends when the client goes away or the HTTP port closes (``closing`` is set), so an
open page never holds up the broker's shutdown. Starlette's StreamingResponse, no extra
dependency."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import msgspec
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ...errors import BadRequest, TidingsError
from . import access
from .api import PREFIX, overview_of
from .endpoints import Endpoint, Query, error_response
from .schemas import Overview

if TYPE_CHECKING:
    from starlette.requests import Request

    from ..app import BrokerServer
    from .endpoints import Call

PATH = PREFIX + "/events"
MIN_INTERVAL, MAX_INTERVAL = 0.2, 60.0
RETRY_MS = 2000  # what an EventSource waits before it reconnects


def _interval(request: Request) -> float:
    raw = request.query_params.get("interval")
    if raw is None:
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not MIN_INTERVAL <= value <= MAX_INTERVAL:  # also NaN
        raise BadRequest(
            f"interval must be seconds between {MIN_INTERVAL} and {MAX_INTERVAL}, got {raw!r}"
        )
    return value


def events_route(server: BrokerServer, closing: asyncio.Event) -> Route:
    async def events(request: Request) -> Response:
        if request.method != "GET":
            return error_response(
                BadRequest(f"method {request.method} is not allowed here: use GET"), 405
            )
        try:
            user = await access.authenticate(server, request)
            access.require_monitor(user, request)
            every = _interval(request)
        except TidingsError as exc:
            return error_response(exc)

        async def stream() -> AsyncIterator[bytes]:
            yield f"retry: {RETRY_MS}\n\n".encode()
            n = 0
            while not closing.is_set():
                n += 1
                data = msgspec.json.encode(overview_of(server)).decode()
                yield f"id: {n}\nevent: overview\ndata: {data}\n\n".encode()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(closing.wait(), every)

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    return Route(PATH, events, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])


async def _documented(call: Call) -> None:  # pragma: no cover - the route above serves it
    raise NotImplementedError


# For the OpenAPI document only (the route is a stream, not a typed endpoint).
ENDPOINT = Endpoint(
    "GET", PATH, "The overview as Server-Sent Events: one 'overview' event (the JSON of GET "
    "/api/v1/overview) per interval", "broker", _documented, Overview,
    query=(Query("interval", str, "1", f"seconds between events ({MIN_INTERVAL} to "
                 f"{MAX_INTERVAL})"),),
    media_type="text/event-stream",
)  # fmt: skip
