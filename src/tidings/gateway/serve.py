"""Running a gateway with uvicorn: ``tidings gateway`` and ``await serve(config, port=...)``."""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
from collections.abc import Iterator
from typing import Any

from .app import Gateway
from .config import GatewayConfig

log = logging.getLogger("tidings.gateway")


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening, non-blocking TCP socket for uvicorn, with TCP_NODELAY (accepted
    connections inherit it on Linux; without it each response waited for the client's delayed
    ACK, about 40 ms a request, which ``tidings bench gateway`` found)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def serve(config: GatewayConfig, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve until SIGTERM/SIGINT. Prints ``gateway listening on http://HOST:PORT`` once the
    socket is bound (port 0 picks a free one)."""
    import uvicorn

    gateway = Gateway(config)
    sock = listening_socket(host, port)
    bound = sock.getsockname()
    uv = uvicorn.Config(
        gateway.app, log_level="warning", access_log=False, lifespan="on", loop="none"
    )
    server = _server_class(uvicorn)(uv)
    print(f"gateway listening on http://{bound[0]}:{bound[1]}", file=sys.stderr, flush=True)
    await server.serve(sockets=[sock])


def _server_class(uvicorn: Any) -> Any:  # uvicorn is imported lazily (an extra)
    class Server(uvicorn.Server):  # type: ignore[misc]  # uvicorn comes in as Any (lazy import)
        """uvicorn re-raises a captured SIGTERM after its graceful shutdown, so the process died
        of the signal (exit code -15); the tidings commands exit 0 after a graceful stop."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                try:
                    yield
                finally:
                    getattr(self, "_captured_signals", []).clear()

    return Server
