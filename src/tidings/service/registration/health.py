"""Health of one service instance: liveness, readiness, user checks and the probe server.

*Live* means the event loop answers (a ticker measures how late it runs). *Ready* means
connected, every handler's subscription attached, not draining (a stop was asked: SIGTERM),
and every ``@svc.health_check`` passing within its timeout. ``$SRV.PING`` is answered only
when ready; ``Service(health_port=8081)`` (or ``tidings run --health-port``) serves
``GET /livez`` and ``GET /readyz`` in the shape Kubernetes probes expect: 200 when fine, 503
with a JSON body naming what is wrong. The probe server is a few lines of asyncio: it adds no
dependency to a service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..app import Service

log = logging.getLogger("tidings.service")

LOOP_STALL = 5.0  # seconds the loop may run late before the instance is not live


@dataclass(frozen=True)
class HealthCheck:
    """A user check: an async function returning truthy (healthy) or raising."""

    name: str
    fn: Callable[[], Awaitable[Any]]
    timeout: float


class Readiness:
    """Computes liveness and readiness of ``service``."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.draining = False
        self.attached = False
        self._lag = 0.0
        self._ticker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.5)
            self._lag = max(0.0, loop.time() - before - 0.5)

    def live(self) -> tuple[bool, dict[str, Any]]:
        ok = self._lag < LOOP_STALL
        return ok, {"status": "ok" if ok else "stalled", "loop_lag": round(self._lag, 4)}

    async def ready(self) -> tuple[bool, dict[str, Any]]:
        svc = self.service
        stopping = svc._stop_requested is not None and svc._stop_requested.is_set()
        problems: list[str] = []
        if self.draining or stopping:
            problems.append("draining: the instance is shutting down")
        if svc.client is None:
            problems.append("not connected")
        if not self.attached:
            problems.append("subscriptions not attached")
        checks: dict[str, str] = {}
        for check in svc.health_checks:
            try:
                result = await asyncio.wait_for(check.fn(), check.timeout)
            except TimeoutError:
                checks[check.name] = f"timed out after {check.timeout}s"
            except Exception as exc:
                checks[check.name] = f"{type(exc).__name__}: {exc}"
            else:
                checks[check.name] = "ok" if result or result is None else "failed"
        problems.extend(f"check {n}: {v}" for n, v in checks.items() if v != "ok")
        ok = not problems
        return ok, {"status": "ok" if ok else "unavailable", "problems": problems, "checks": checks}


def _response(status: int, body: dict[str, Any]) -> bytes:
    payload = json.dumps(body).encode()
    reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
    head = (
        f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + payload


class ProbeServer:
    """``GET /livez`` and ``GET /readyz`` on ``host:port`` (port 0 picks a free one)."""

    def __init__(self, readiness: Readiness, host: str, port: int) -> None:
        self.readiness = readiness
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("health probes on http://%s:%d/livez and /readyz", self.host, self.port)
        return self.port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5.0)
            while (await asyncio.wait_for(reader.readline(), 5.0)) not in (b"\r\n", b"\n", b""):
                pass
            parts = line.decode("latin-1").split()
            method, path = (parts[0], parts[1].split("?")[0]) if len(parts) >= 2 else ("", "")
            if method not in ("GET", "HEAD"):
                out = _response(405, {"error": "use GET"})
            elif path == "/livez":
                ok, body = self.readiness.live()
                out = _response(200 if ok else 503, body)
            elif path == "/readyz":
                ok, body = await self.readiness.ready()
                out = _response(200 if ok else 503, body)
            else:
                out = _response(404, {"error": f"no {path}: use /livez or /readyz"})
            writer.write(out)
            await writer.drain()
        except (TimeoutError, OSError, UnicodeDecodeError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
