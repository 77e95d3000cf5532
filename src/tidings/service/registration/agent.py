"""The registration agent of one running instance.

On start it answers the ``$SRV`` control subjects (PING only while ready) and heartbeats a
record of itself (INFO and STATS documents, readiness, interval) into the registry topic every
``heartbeat`` seconds; readers count an instance gone after :data:`MISSED_BEATS` missed
beats. On graceful stop it writes a ``down`` record first, so callers stop choosing it before
it drains; a SIGKILLed instance simply stops beating.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import time
from typing import TYPE_CHECKING, Any

from ...client.registry.bus import DiscoveryBus, TopicBus, bus_for, ensure_topic
from ...client.registry.orphans import collect_orphans
from ...client.registry.subjects import HEARTBEAT_RETENTION, HEARTBEAT_TOPIC, SRV_TOPIC
from ...errors import TidingsError
from . import shapes
from .health import ProbeServer, Readiness
from .stats import InstanceStats, StatsMiddleware

if TYPE_CHECKING:
    from ...client import AsyncClient
    from ..app import Service

log = logging.getLogger("tidings.discovery")

DEFAULT_HEARTBEAT = 10.0
MISSED_BEATS = 3


def new_instance_id() -> str:
    return secrets.token_hex(11)


def encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


class RegistrationAgent:
    """Registers ``service`` while it runs (see the module docstring)."""

    def __init__(self, service: Service, instance: str | None = None) -> None:
        self.service = service
        self.instance = instance or new_instance_id()
        self.stats = InstanceStats()
        self.middleware = StatsMiddleware(self.stats)
        self.readiness = Readiness(service)
        self.probes: ProbeServer | None = None
        self._bus: DiscoveryBus | None = None
        self._client: AsyncClient | None = None
        self._beats: asyncio.Task[None] | None = None
        self._collector: asyncio.Task[None] | None = None

    @property
    def metadata(self) -> dict[str, str]:
        meta = {str(k): str(v) for k, v in self.service.metadata.items()}
        meta.setdefault("tidings.host", socket.gethostname())
        meta.setdefault("tidings.pid", str(os.getpid()))
        if self.probes is not None:
            meta["tidings.health_port"] = str(self.probes.port)
        return meta

    # documents
    def ping(self) -> dict[str, Any]:
        return shapes.ping(self.service, self.instance, self.metadata)

    def info(self) -> dict[str, Any]:
        return shapes.info(self.service, self.instance, self.metadata)

    def stats_doc(self, ready: bool | None = None) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if ready is not None:
            extra["ready"] = ready
        return shapes.stats(self.service, self.instance, self.metadata, self.stats, extra)

    async def respond(self, verb: str) -> bytes | None:
        if verb == "PING":
            ready, _ = await self.readiness.ready()
            return encode(self.ping()) if ready else None
        if verb == "INFO":
            return encode(self.info())
        ready, _ = await self.readiness.ready()
        return encode(self.stats_doc(ready))

    # lifecycle
    async def start_probes(self, host: str, port: int | None) -> None:
        self.readiness.start()
        if port is not None and port >= 0:
            self.probes = ProbeServer(self.readiness, host, port)
            await self.probes.start()

    async def start(self, client: AsyncClient) -> None:
        """Answer ``$SRV`` and start heartbeating. Registration is best effort: a user not
        allowed on the discovery topics (or a transport that refuses them) gets a working
        service that is not discoverable, and a warning saying why."""
        self._client = client
        bus = bus_for(client)
        try:
            await bus.answer(self.service.name, self.instance, self.respond)
            self._bus = bus
        except TidingsError as exc:
            await bus.close()
            log.warning(
                "%s does not answer $SRV discovery: %s (grant publish and subscribe on %s)",
                self.service.name, exc, SRV_TOPIC,
            )  # fmt: skip
        if self.service.heartbeat:
            try:
                await ensure_topic(client, HEARTBEAT_TOPIC, max_age=HEARTBEAT_RETENTION)
                await self.beat()
            except TidingsError as exc:
                log.warning(
                    "%s is not in the broker's registry: %s (grant publish on %s)",
                    self.service.name, exc, HEARTBEAT_TOPIC,
                )  # fmt: skip
                return
            self._beats = asyncio.create_task(self._beat_forever())
        if isinstance(self._bus, TopicBus):
            self._collector = asyncio.create_task(self._collect(client))

    async def _collect(self, client: AsyncClient) -> None:
        try:
            await collect_orphans(client, keep=f"_srv.{self.instance}")
        except TidingsError as exc:
            log.debug("could not collect orphaned discovery groups: %s", exc)

    def record(self, op: str, ready: bool) -> dict[str, Any]:
        interval = self.service.heartbeat or DEFAULT_HEARTBEAT
        return {
            "op": op,
            "ts": time.time(),
            "interval": interval,
            "expiry": interval * MISSED_BEATS,
            "transport": self._client.transport.scheme if self._client else None,
            "ready": ready,
            "info": self.info(),
            "stats": self.stats_doc(ready),
        }

    async def beat(self, op: str = "up") -> None:
        if self._client is None:
            return
        self.stats.refresh_rates()
        ready = False if op == "down" else (await self.readiness.ready())[0]
        body = encode(self.record(op, ready))
        await self._client.publish(HEARTBEAT_TOPIC, body, key=self.instance)

    async def _beat_forever(self) -> None:
        interval = self.service.heartbeat or DEFAULT_HEARTBEAT
        while True:
            await asyncio.sleep(interval)
            try:
                await self.beat()
            except TidingsError as exc:  # the broker is away: beat again next time
                log.debug("heartbeat of %s failed: %s", self.instance, exc)

    async def deregister(self) -> None:
        """Say the instance is leaving (graceful stop): gone from the registry at once."""
        self.readiness.draining = True
        if self._beats is not None:
            self._beats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beats
            self._beats = None
            try:
                await self.beat("down")
            except TidingsError as exc:
                log.debug("could not deregister %s: %s", self.instance, exc)
        if self._bus is not None:
            bus, self._bus = self._bus, None
            await bus.close()

    async def stop(self) -> None:
        if self._collector is not None:
            self._collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._collector
            self._collector = None
        await self.deregister()
        if self.probes is not None:
            await self.probes.stop()
            self.probes = None
        await self.readiness.stop()
        self._client = None
