"""What the registry knows about one instance, folded from NATS micro INFO/STATS answers,
registry heartbeats and third-party registrations."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Endpoint:
    """One handler (or one external endpoint) of an instance."""

    name: str
    subject: str
    queue_group: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    num_requests: int = 0
    num_errors: int = 0
    last_error: str = ""
    average_processing_time: int = 0  # nanoseconds
    rate: float = 0.0  # handlings/s over the last heartbeat interval
    error_rate: float = 0.0

    @property
    def topic(self) -> str:
        return self.metadata.get("tidings.topic", self.subject)

    @property
    def kind(self) -> str:
        return self.metadata.get("tidings.kind", "request")

    @property
    def version(self) -> str | None:
        return self.metadata.get("tidings.version")

    def schema(self, which: str = "schema") -> dict[str, Any] | None:
        text = self.metadata.get(f"tidings.{which}")
        return json.loads(text) if text else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "subject": self.subject,
            "queue_group": self.queue_group,
            "kind": self.kind,
            "version": self.version,
            "num_requests": self.num_requests,
            "num_errors": self.num_errors,
            "last_error": self.last_error,
            "average_processing_time": self.average_processing_time,
            "rate": self.rate,
            "error_rate": self.error_rate,
        }


@dataclass
class Instance:
    """One live (or recently seen) instance of a service."""

    name: str
    id: str
    version: str
    description: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    endpoints: list[Endpoint] = field(default_factory=list)
    started: str | None = None
    ready: bool | None = None
    last_seen: float | None = None  # the last heartbeat (seconds since the epoch)
    expires: float | None = None  # gone from the registry after this time
    answering: bool = False  # answered $SRV just now
    sources: set[str] = field(default_factory=set)  # srv, registry, external
    url: str | None = None  # external (third-party) registrations: where it is
    outgoing: list[dict[str, Any]] = field(default_factory=list)
    transport: str | None = None

    @property
    def address(self) -> str:
        return self.url or f"{self.name}/{self.id}"

    @property
    def health(self) -> str:
        if self.ready is False:
            return "not ready"
        if "srv" in self.sources and not self.answering:
            return "silent"
        return "ready" if self.ready or self.answering else "unknown"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": self.id,
            "version": self.version,
            "description": self.description,
            "metadata": self.metadata,
            "started": self.started,
            "health": self.health,
            "ready": self.ready,
            "last_seen": self.last_seen,
            "expires": self.expires,
            "sources": sorted(self.sources),
            "url": self.url,
            "transport": self.transport,
            "endpoints": [e.as_dict() for e in self.endpoints],
            "outgoing": self.outgoing,
        }

    # folding protocol documents in
    def merge_info(self, doc: dict[str, Any]) -> None:
        self.version = doc.get("version") or self.version
        self.description = doc.get("description") or self.description
        self.metadata.update({str(k): str(v) for k, v in (doc.get("metadata") or {}).items()})
        known = {e.name: e for e in self.endpoints}
        for raw in doc.get("endpoints") or []:
            ep = known.get(raw.get("name", ""))
            if ep is None:
                ep = Endpoint(name=raw.get("name", ""), subject=raw.get("subject", ""))
                self.endpoints.append(ep)
                known[ep.name] = ep
            ep.subject = raw.get("subject", ep.subject)
            ep.queue_group = raw.get("queue_group") or ep.queue_group
            ep.metadata = {str(k): str(v) for k, v in (raw.get("metadata") or {}).items()}

    def merge_stats(self, doc: dict[str, Any]) -> None:
        self.started = doc.get("started") or self.started
        known = {e.name: e for e in self.endpoints}
        for raw in doc.get("endpoints") or []:
            ep = known.get(raw.get("name", ""))
            if ep is None:
                ep = Endpoint(name=raw.get("name", ""), subject=raw.get("subject", ""))
                self.endpoints.append(ep)
                known[ep.name] = ep
            ep.num_requests = int(raw.get("num_requests") or 0)
            ep.num_errors = int(raw.get("num_errors") or 0)
            ep.last_error = raw.get("last_error") or ""
            ep.average_processing_time = int(raw.get("average_processing_time") or 0)
            data = raw.get("data")
            if isinstance(data, dict):
                ep.rate = float(data.get("rate") or 0.0)
                ep.error_rate = float(data.get("error_rate") or 0.0)
        extra = doc.get("tidings")
        if isinstance(extra, dict):
            self.outgoing = list(extra.get("outgoing") or [])
            if "ready" in extra:
                self.ready = bool(extra["ready"])


def instance_from(doc: dict[str, Any]) -> Instance:
    return Instance(
        name=str(doc.get("name", "")),
        id=str(doc.get("id", "")),
        version=str(doc.get("version", "")),
    )


@dataclass
class ServiceView:
    """Every known instance of one service name."""

    name: str
    instances: list[Instance]

    @property
    def versions(self) -> list[str]:
        return sorted({i.version for i in self.instances})

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": self.versions,
            "instances": [i.as_dict() for i in self.instances],
        }
