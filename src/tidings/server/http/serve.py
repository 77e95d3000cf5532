"""Running the broker's HTTP app with uvicorn inside the broker's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ...errors import BadRequest

if TYPE_CHECKING:
    from ..app import BrokerServer

log = logging.getLogger("tidings.server")

INSTALL_HINT = "pip install 'tidings[http]'"


def parse_address(text: str) -> tuple[str, int] | None:
    """``host:port`` -> (host, port); ``off`` -> None."""
    if text.strip().lower() in ("off", "none", "no", "false", "0", ""):
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise BadRequest(f"--http expects host:port (like 127.0.0.1:7421) or off, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


class HttpServer:
    def __init__(self, server: Any, task: asyncio.Task[None], closing: asyncio.Event) -> None:
        self._uvicorn = server
        self._task = task
        self._closing = closing  # ends the event streams, which would hold up the shutdown

    @property
    def address(self) -> tuple[str, int]:
        sock: socket.socket = self._uvicorn.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]  # (host, port, flow, scope) on IPv6
        return str(host), int(port)

    async def stop(self) -> None:
        self._closing.set()
        self._uvicorn.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(self._task, 5.0)


async def start_http(broker: BrokerServer, address: str) -> HttpServer | None:
    """Start the HTTP app on ``address`` (or nothing for ``off``). A missing extra or a port
    in use is logged, and the broker runs on without HTTP."""
    where = parse_address(address)
    if where is None:
        return None
    try:
        import uvicorn

        from .probes import build_app
    except ImportError:
        log.warning(
            "HTTP (/livez, /readyz, /metrics, /api/v1) is off: Starlette, uvicorn or "
            "prometheus-client is not installed; "
            "enable it with: %s (or silence this with --http off)",
            INSTALL_HINT,
        )
        return None
    app = build_app(broker)
    config = uvicorn.Config(app, host=where[0], port=where[1], log_level="warning", lifespan="off")

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # the broker owns SIGTERM/SIGINT: uvicorn must not take them over

    server = Server(config)
    # Bind here: uvicorn answers a failed bind with sys.exit(), which would end the broker.
    try:
        family = socket.AF_INET6 if ":" in where[0] else socket.AF_INET
        sock = socket.create_server(where, family=family, backlog=1024)
    except OSError as exc:
        log.error(
            "HTTP (/livez, /readyz, /metrics, /api/v1) could not start on %s:%d (%s); the "
            "broker runs without it: choose another --http host:port, or --http off",
            *where,
            exc.strerror or exc,
        )
        return None
    sock.setblocking(False)

    async def serve() -> None:
        try:
            await server.serve(sockets=[sock])
        except SystemExit:  # uvicorn's way of failing at start-up
            log.error("HTTP stopped: uvicorn could not serve on %s:%d", *where)

    task = asyncio.create_task(serve(), name="tidings-http")
    while not server.started:
        if task.done():
            sock.close()
            return None
        await asyncio.sleep(0.02)
    http = HttpServer(server, task, app.state.closing)
    host, port = http.address
    log.info("http on http://%s:%d (/livez, /readyz, /metrics, /api/v1)", host, port)
    path = broker.config.mqtt_websocket.strip()
    if broker.mqtt is not None and path.lower() != "off":
        log.info("MQTT over WebSocket on ws://%s:%d%s (subprotocol mqtt)", host, port, path)
    return http
