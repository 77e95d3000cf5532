"""tidings.gateway: REST in front of tidings services, routed over the bus::

    @svc.reply("pricing.quote", http="POST /v1/quotes")     # the reply is the response
    async def quote(q: Quote) -> Price: ...

    @svc.on("order.refund", http="POST /v1/refunds")         # 202 Accepted at once
    async def refund(cmd: Refund) -> None: ...

    $ tidings gateway --url tidings://127.0.0.1:7420 --port 8080

Instances advertise their routes and payload schemas in the registry; the gateway learns
them live (and from a TOML file), validates requests before publishing, and guards each
upstream with the resilience pipeline. Layer: above tidings.service and tidings.discovery,
below tidings.cli. See docs/gateway.md.
"""

from .app import PRINCIPAL_HEADER, Gateway
from .config import GatewayConfig
from .routes import Route, RouteTable, static_routes
from .serve import serve

__all__ = [
    "PRINCIPAL_HEADER",
    "Gateway",
    "GatewayConfig",
    "Route",
    "RouteTable",
    "serve",
    "static_routes",
]
