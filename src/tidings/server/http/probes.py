"""``GET /livez`` (the event loop answers) and ``GET /readyz`` (the store is open and
recovered, and no memory or disk alarm is raised), shaped for Kubernetes probes: 200 or 503
with a JSON body that says why. The app also carries MQTT over WebSocket (``/mqtt``) while an
MQTT port is on."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from ..management.routes import management_routes, unmatched  # /metrics and /api/v1
from ..mqtt.websocket import serve_websocket  # MQTT over WebSocket on --mqtt-websocket

if TYPE_CHECKING:
    from ..app import BrokerServer


def readiness(server: BrokerServer) -> tuple[bool, dict[str, Any]]:
    problems: list[str] = []
    if server.address is None:
        problems.append("the store is not open and recovered yet")
    alarms = server.alarms
    for alarm in (getattr(alarms, "memory", None), getattr(alarms, "disk", None)):
        if alarm is not None:
            problems.append(str(alarm))
    return not problems, {"status": "ok" if not problems else "unavailable", "problems": problems}


def build_app(server: BrokerServer) -> Starlette:
    """The app; ``app.state.closing`` is set when the port closes (ends event streams)."""
    closing = asyncio.Event()

    async def livez(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "version": server.version})

    async def readyz(request: Request) -> JSONResponse:
        ok, body = readiness(server)
        return JSONResponse(body, status_code=200 if ok else 503)

    probes = [Route("/livez", livez), Route("/readyz", readyz)]
    routes: list[BaseRoute] = [*probes, *management_routes(server, closing)]
    path = server.config.mqtt_websocket.strip()
    if server.config.mqtt_enabled() and path.lower() != "off":

        async def mqtt_over_websocket(websocket: WebSocket) -> None:
            await serve_websocket(server.mqtt, websocket)

        routes.append(WebSocketRoute(path, mqtt_over_websocket))
    app = Starlette(routes=routes, exception_handlers={404: unmatched})
    app.state.closing = closing
    return app
