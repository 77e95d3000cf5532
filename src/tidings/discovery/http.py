"""An httpx transport that resolves ``http://<service-name>/path`` through the registry.

    transport = DiscoveryTransport(client)            # a connected tidings AsyncClient
    async with httpx.AsyncClient(transport=transport) as http:
        r = await http.get("http://pricing/quote")   # some live instance of "pricing"

Instances come from :meth:`Registry.instances` (refreshed every ``refresh`` seconds): a
third-party registration's URL, or a service whose metadata has ``http_url``. Each call goes
to the instance the balancer (default :class:`~.balancers.PeakEwma`) picks; a 5xx answer or
a connection error counts as a failure for the balancer and the outlier ejection. Hosts that
name no registered service pass through unchanged. Needs ``pip install 'tidings[http]'``.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import httpx

from ..client.registry import Instance, Registry
from ..errors import NoInstance
from .balancers import Balancer, PeakEwma

if TYPE_CHECKING:
    from ..client import AsyncClient


def base_url(instance: Instance) -> str | None:
    return instance.url or instance.metadata.get("http_url")


class DiscoveryTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        client: AsyncClient | Registry,
        *,
        balancer: Balancer | None = None,
        inner: httpx.AsyncBaseTransport | None = None,
        refresh: float = 5.0,
    ) -> None:
        self.registry = client if isinstance(client, Registry) else Registry(client)
        self.balancer = balancer or PeakEwma()
        self.inner = inner or httpx.AsyncHTTPTransport()
        self.refresh = refresh
        self._bases: dict[str, list[str]] = {}
        self._fetched = 0.0
        self._lock = asyncio.Lock()

    async def _lookup(self, host: str) -> list[str] | None:
        async with self._lock:
            if time.monotonic() - self._fetched > self.refresh:
                found: dict[str, list[str]] = {}
                for inst in await self.registry.instances(ask=False):
                    url = base_url(inst)
                    if url and inst.ready is not False:
                        found.setdefault(inst.name, []).append(url.rstrip("/"))
                self._bases = found
                self._fetched = time.monotonic()
        return self._bases.get(host)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        bases = await self._lookup(host)
        if bases is None:
            return await self.inner.handle_async_request(request)
        if not bases:
            raise NoInstance(f"no live instance of {host!r} has an HTTP address")
        chosen = self.balancer.pick(bases)
        target = httpx.URL(chosen).join(request.url.raw_path.decode("ascii"))
        request.url = target
        request.headers["host"] = target.netloc.decode("ascii")
        start = time.perf_counter()
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.TransportError:
            self.balancer.observe(chosen, time.perf_counter() - start, False)
            raise
        self.balancer.observe(chosen, time.perf_counter() - start, response.status_code < 500)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()
