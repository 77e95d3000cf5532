"""Running a gateway with uvicorn: ``tidings gateway`` and ``await serve(config, port=...)``."""

from __future__ import annotations

import logging
import socket
import sys

from .app import Gateway
from .config import GatewayConfig

log = logging.getLogger("tidings.gateway")


async def serve(config: GatewayConfig, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve until SIGTERM/SIGINT. Prints ``gateway listening on http://HOST:PORT`` once the
    socket is bound (port 0 picks a free one)."""
    import uvicorn

    gateway = Gateway(config)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    bound = sock.getsockname()
    uv = uvicorn.Config(
        gateway.app, log_level="warning", access_log=False, lifespan="on", loop="none"
    )
    server = uvicorn.Server(uv)
    print(f"gateway listening on http://{bound[0]}:{bound[1]}", file=sys.stderr, flush=True)
    await server.serve(sockets=[sock])
