"""``GET /livez`` (the event loop answers) and ``GET /readyz`` (the store is open and
recovered, and no memory or disk alarm is raised), shaped for Kubernetes probes: 200 or 503
with a JSON body that says why."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..management.routes import management_routes, unmatched  # /metrics and /api/v1

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
    async def livez(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "version": server.version})

    async def readyz(request: Request) -> JSONResponse:
        ok, body = readiness(server)
        return JSONResponse(body, status_code=200 if ok else 503)

    probes = [Route("/livez", livez), Route("/readyz", readyz)]
    routes = [*probes, *management_routes(server)]
    return Starlette(routes=routes, exception_handlers={404: unmatched})
