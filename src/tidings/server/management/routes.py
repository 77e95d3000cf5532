"""The routes the management side adds to the broker's HTTP app: ``/metrics``, the
``/api/v1`` resources, the ``/api/v1/events`` stream and ``/api/v1/openapi.json``."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ...errors import TidingsError
from . import access
from .api import ENDPOINTS, PREFIX
from .dashboard import dashboard_routes
from .definitions import endpoints as definition_endpoints
from .endpoints import error_response, not_found, routes
from .events import ENDPOINT as EVENTS_ENDPOINT
from .events import events_route
from .metrics import CONTENT_TYPE, Metrics
from .openapi import document
from .servicemap import services_routes
from .tracepage import trace_routes
from .traces import ENDPOINTS as TRACE_ENDPOINTS
from .users import endpoints as user_endpoints

if TYPE_CHECKING:
    from ..app import BrokerServer

ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


async def unmatched(request: Request, exc: Exception) -> Response:
    """What no route matched (a path with a newline escapes the ``/api/v1/{rest:path}``
    catch-all, whose pattern stops at line ends): the API's JSON 404 under /api, else text."""
    if request.url.path.startswith(PREFIX):
        return await not_found(request)
    return Response("Not Found", status_code=404, media_type="text/plain")


def management_routes(server: BrokerServer, closing: asyncio.Event) -> list[BaseRoute]:
    """``closing``: set when the HTTP port closes (ends the event streams)."""
    metrics = Metrics(server)
    endpoints = [
        *ENDPOINTS,
        EVENTS_ENDPOINT,
        *TRACE_ENDPOINTS,
        *user_endpoints(PREFIX),
        *definition_endpoints(PREFIX),
    ]
    spec = document(endpoints, server.version)

    async def scrape(request: Request) -> Response:
        try:
            user = await access.authenticate(server, request)
            access.require_monitor(user, request)
        except TidingsError as exc:
            return error_response(exc)
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    async def openapi(request: Request) -> Response:
        return JSONResponse(spec)

    return [
        Route("/metrics", scrape),
        Route(PREFIX + "/openapi.json", openapi),
        events_route(server, closing),
        *routes(server, [e for e in endpoints if e is not EVENTS_ENDPOINT]),
        Route(PREFIX + "/{rest:path}", not_found, methods=ANY_METHOD),
        *dashboard_routes(server),
        *trace_routes(server),
        *services_routes(server),
    ]
