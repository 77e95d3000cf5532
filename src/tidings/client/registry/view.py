"""The registry view: who runs, in which version, where, how healthy.

Three sources, folded by instance id: the live ``$SRV.INFO``/``$SRV.STATS`` answers (every
transport; on ``nats://`` these include services written with ``nats.micro``), the registry
heartbeats on the broker (kept on disk, so a restarted broker still knows them; an instance
is gone once its last beat is older than its expiry, or at once when it said ``down``), and
third-party registrations of external endpoints (``register``/``deregister``).

On a transport that keeps no history for a new group (``amqp://``, see
:func:`~tidings.transports.capabilities.replays_history`) heartbeats cannot be read back, so
every view asks the live instances over ``$SRV`` instead, even with ``ask=False``: each
answers at once with the same INFO and STATS documents its heartbeat carries, and the view is
complete within one round trip (``srv_timeout``), not the next heartbeat interval.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from ...errors import NoInstance
from ...transports.capabilities import replays_history
from .bus import DiscoveryBus, bus_for, ensure_topic
from .instances import Endpoint, Instance, ServiceView, instance_from
from .reading import read_topic
from .subjects import EXTERNAL_TOPIC, HEARTBEAT_TOPIC, control_subject

if TYPE_CHECKING:
    from ..asyncclient import AsyncClient

WINDOW = 300.0  # seconds of heartbeats read back (the longest expiry that is honoured)


async def _nothing() -> dict[str, Instance]:
    return {}


class Registry:
    """Discovery over one client connection (see the module docstring)."""

    def __init__(
        self, client: AsyncClient, *, srv_timeout: float = 0.5, window: float = WINDOW
    ) -> None:
        self.client = client
        self.srv_timeout = srv_timeout
        self.window = window
        self._bus: DiscoveryBus | None = None

    def _the_bus(self) -> DiscoveryBus:
        if self._bus is None:
            self._bus = bus_for(self.client)
        return self._bus

    async def ask(
        self, verb: str, name: str | None = None, instance: str | None = None
    ) -> list[dict[str, Any]]:
        """The raw NATS micro answers to ``$SRV.<verb>[.name[.id]]``."""
        await self.client.connect()
        return await self._the_bus().ask(
            control_subject(verb, name, instance), timeout=self.srv_timeout
        )

    async def ping(self, name: str | None = None) -> list[dict[str, Any]]:
        return await self.ask("PING", name)

    async def _heartbeats(self, now: float) -> dict[str, Instance]:
        out: dict[str, Instance] = {}
        for key, doc in await read_topic(self.client, HEARTBEAT_TOPIC, since=now - self.window):
            info = doc.get("info") or {}
            iid = key or str(info.get("id", ""))
            if doc.get("op") == "down":
                out.pop(iid, None)
                continue
            expires = float(doc.get("ts", 0)) + float(doc.get("expiry", 30))
            if expires < now:
                out.pop(iid, None)
                continue
            inst = instance_from(info)
            inst.merge_info(info)
            inst.merge_stats(doc.get("stats") or {})
            inst.ready = bool(doc.get("ready"))
            inst.last_seen = float(doc.get("ts", 0))
            inst.expires = expires
            inst.transport = doc.get("transport")
            inst.sources.add("registry")
            out[iid] = inst
        return out

    async def _external(self) -> dict[str, Instance]:
        out: dict[str, Instance] = {}
        for key, doc in await read_topic(self.client, EXTERNAL_TOPIC):
            if not key:
                continue
            if doc.get("op") == "down":
                out.pop(key, None)
                continue
            inst = Instance(
                name=str(doc["name"]),
                id=str(doc["id"]),
                version=str(doc.get("version") or "0.0.0"),
                metadata=dict(doc.get("metadata") or {}),
                url=doc.get("url"),
                ready=True,
                last_seen=float(doc.get("ts", 0)),
                sources={"external"},
                endpoints=[Endpoint(name="http", subject=str(doc.get("url")))],
            )
            out[key] = inst
        return out

    async def instances(self, name: str | None = None, *, ask: bool = True) -> list[Instance]:
        """Every known live instance (of ``name``), sorted by name then id. ``ask=False``
        reads only the registry topics, except on a transport that cannot replay them (see
        the module docstring), where the live instances are asked all the same."""
        await self.client.connect()
        now = time.time()
        replays = replays_history(self.client.transport)
        ask = ask or not replays
        heartbeats = self._heartbeats(now) if replays else _nothing()
        tasks: list[Any] = [heartbeats, self._external()]
        if ask:
            tasks += [self.ask("INFO", name), self.ask("STATS", name)]
        results = await asyncio.gather(*tasks)
        found: dict[str, Instance] = dict(results[0])
        for key, inst in results[1].items():
            found[f"external/{key}"] = inst
        if ask:
            infos, stats = results[2], results[3]
            for doc in infos:
                iid = str(doc.get("id", ""))
                inst = found.get(iid)
                if inst is None:
                    inst = found[iid] = instance_from(doc)
                inst.merge_info(doc)
                inst.answering = True
                inst.sources.add("srv")
            for doc in stats:
                inst = found.get(str(doc.get("id", "")))
                if inst is not None:
                    inst.merge_stats(doc)
        out = [i for i in found.values() if name is None or i.name == name]
        return sorted(out, key=lambda i: (i.name, i.id))

    async def services(self) -> list[ServiceView]:
        """Every known service with its instances."""
        by_name: dict[str, list[Instance]] = {}
        for inst in await self.instances():
            by_name.setdefault(inst.name, []).append(inst)
        return [ServiceView(n, by_name[n]) for n in sorted(by_name)]

    async def discover(self, name: str, *, version: str | None = None) -> list[Instance]:
        """The live instances of ``name`` (of major ``version``); NoInstance when none."""
        found = [i for i in await self.instances(name) if i.ready is not False]
        if version is not None:
            major = str(version).lstrip("v").split(".")[0]
            found = [i for i in found if i.version.lstrip("v").split(".")[0] == major]
        if not found:
            which = f" in version {version}" if version else ""
            raise NoInstance(
                f"no live instance of service {name!r}{which}: start one, or see "
                "`tidings services` for what runs"
            )
        return found

    # third-party registration
    async def register(
        self,
        name: str,
        url: str,
        *,
        id: str | None = None,
        version: str = "0.0.0",
        metadata: dict[str, str] | None = None,
    ) -> Instance:
        """Register an external endpoint (e.g. an HTTP service) under ``name``; it stays
        until :meth:`deregister` (nothing heartbeats for it)."""
        iid = id or url
        await ensure_topic(self.client, EXTERNAL_TOPIC, max_messages=100_000)
        doc = {
            "op": "up", "name": name, "id": iid, "url": url, "version": version,
            "metadata": dict(metadata or {}), "ts": time.time(),
        }  # fmt: skip
        await self.client.publish(EXTERNAL_TOPIC, json.dumps(doc).encode(), key=f"{name}/{iid}")
        return Instance(name=name, id=iid, version=version, url=url, sources={"external"})

    async def deregister(self, name: str, id: str) -> None:
        """Remove a third-party registration."""
        await ensure_topic(self.client, EXTERNAL_TOPIC, max_messages=100_000)
        doc = {"op": "down", "name": name, "id": id, "ts": time.time()}
        await self.client.publish(EXTERNAL_TOPIC, json.dumps(doc).encode(), key=f"{name}/{id}")

    async def close(self) -> None:
        if self._bus is not None:
            bus, self._bus = self._bus, None
            await bus.close()
