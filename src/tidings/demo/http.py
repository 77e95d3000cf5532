"""The demo's way in over HTTP: a gateway in front of the order service.

The order service declares ``@order.on("order.refund", http="POST /refunds")``: a refund
command POSTed to the gateway is published on the bus (``202 Accepted`` at once) and the order
service's handler publishes the ``order.refunded`` event, with the message id derived from the
order so a retried command refunds once. :class:`RefundGateway` runs the gateway in-process
(uvicorn on 127.0.0.1, a free port) and POSTs refunds with httpx and an ``Idempotency-Key``.
It needs the ``tidings[gateway]`` extra; :func:`missing` says what is not installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
from collections import Counter
from typing import Any

from ..errors import TidingsError
from .models import OrderRefunded

ROUTE = "POST /refunds"


def missing() -> list[str]:
    """The gateway's packages that are not installed (empty: the demo can use HTTP)."""
    return [m for m in ("starlette", "uvicorn", "httpx") if importlib.util.find_spec(m) is None]


class RefundGateway:
    """A gateway on 127.0.0.1 (free port) in this process, and an HTTP client for refunds."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.statuses: Counter[int] = Counter()
        self.address = ""
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None
        self._http: Any = None

    async def start(self, timeout: float = 15.0) -> None:
        import httpx
        import uvicorn

        from ..gateway import Gateway, GatewayConfig
        from ..gateway.serve import _server_class, listening_socket

        self.gateway = Gateway(GatewayConfig(url=self.url, refresh=0.5))
        sock = listening_socket("127.0.0.1", 0)
        host, port = sock.getsockname()[:2]
        self.address = f"http://{host}:{port}"
        config = uvicorn.Config(
            self.gateway.app, log_level="warning", access_log=False, lifespan="on", loop="none"
        )
        self._server = _server_class(uvicorn)(config)
        self._server.install_signal_handlers = lambda: None  # the demo handles its signals
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        self._http = httpx.AsyncClient(base_url=self.address, timeout=30.0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (self._server.started and self.gateway.table.find("POST", "/refunds")):
            if self._task.done() or loop.time() > deadline:
                raise TidingsError(f"the demo's gateway did not serve {ROUTE} at {self.address}")
            await asyncio.sleep(0.05)

    async def post(self, orders: list[OrderRefunded], concurrency: int = 32) -> float:
        """POST every order to /refunds (Idempotency-Key: the order); returns seconds taken."""
        assert self._http is not None
        gate = asyncio.Semaphore(concurrency)
        loop = asyncio.get_running_loop()
        t0 = loop.time()

        async def one(o: OrderRefunded) -> None:
            async with gate:
                r = await self._http.post(
                    "/refunds",
                    json=o.model_dump(),
                    headers={"Idempotency-Key": f"cmd-{o.order_id}"},
                )
                self.statuses[r.status_code] += 1

        await asyncio.gather(*(one(o) for o in orders))
        return loop.time() - t0

    def ok(self) -> int:
        return sum(n for code, n in self.statuses.items() if 200 <= code < 300)

    async def stop(self) -> None:
        if self._http is not None:
            with contextlib.suppress(Exception):
                await self._http.aclose()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 10)
