"""One-call lookups by URL: ``await tidings.discover("pricing")``."""

from __future__ import annotations

from ..client import AsyncClient
from ..client.registry import Instance, Registry, ServiceView


async def discover(
    name: str, url: str | None = None, *, version: str | None = None, timeout: float = 0.5
) -> list[Instance]:
    """The live instances of ``name`` on the broker at ``url`` (default ``$TIDINGS_URL``)."""
    async with AsyncClient(url) as client:
        return await client.discover(name, version=version, timeout=timeout)


async def services(url: str | None = None, *, timeout: float = 0.5) -> list[ServiceView]:
    """Every running service on the broker at ``url``."""
    async with AsyncClient(url) as client:
        return await client.services(timeout=timeout)


async def register(
    name: str,
    endpoint_url: str,
    url: str | None = None,
    *,
    id: str | None = None,
    version: str = "0.0.0",
    metadata: dict[str, str] | None = None,
) -> Instance:
    """Register an external endpoint (e.g. ``http://10.0.0.5:8080``) under ``name``."""
    async with AsyncClient(url) as client:
        return await Registry(client).register(
            name, endpoint_url, id=id, version=version, metadata=metadata
        )
