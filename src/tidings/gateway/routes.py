"""The gateway's route table: HTTP routes learned from the registry (instances advertise the
``http=`` of their handlers) and from a TOML file, matched by method and path.

A route is ``METHOD /path`` with ``{name}`` path parameters. A path that starts with
``/v<N>/`` serves major version N of its handler; a request for a version nobody serves is
told which versions exist (404), not left to time out.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..client.registry import Instance
from ..client.registry.subjects import INSTANCE_GROUP_KEY, major_of, versioned_topic
from ..errors import BadRequest
from ..service.handlers import http_route

_VERSIONED = re.compile(r"^/v(\d+)(/.*)$")
_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")
IDEMPOTENT_METHODS = frozenset({"GET", "PUT", "DELETE"})


@dataclass
class Route:
    """One HTTP route and the bus operation behind it."""

    method: str
    path: str  # as declared: /v1/refunds/{id}
    service: str
    topic: str
    kind: str  # "request" (the reply is the body) or "command" (202 Accepted)
    version: str | None = None  # the handler's version; its major picks the versioned topic
    schema: dict[str, Any] | None = None  # JSON Schema of the payload
    returns: dict[str, Any] | None = None  # JSON Schema of the reply
    idempotent_handler: bool = False
    timeout: float | None = None  # seconds; None: the gateway's default
    description: str = ""
    instances: set[str] = field(default_factory=set)  # live instance ids serving it
    groups: dict[str, set[str]] = field(default_factory=dict)  # instance group -> its ids
    static: bool = False

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def major(self) -> str | None:
        m = _VERSIONED.match(self.path)
        return m.group(1) if m else None

    @property
    def unversioned(self) -> str:
        """The path without its ``/v<N>`` prefix (how versions of one route are grouped)."""
        m = _VERSIONED.match(self.path)
        return m.group(2) if m else self.path

    @property
    def idempotent(self) -> bool:
        """Safe to retry: a GET/PUT/DELETE route, or a command whose handler is idempotent."""
        return self.method in IDEMPOTENT_METHODS or self.idempotent_handler

    @property
    def bus_topic(self) -> str:
        """Requests go to the handler's versioned topic (only that major answers)."""
        if self.kind == "request" and self.version:
            return versioned_topic(self.topic, self.version)
        return self.topic

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method != self.method:
            return None
        return match_path(self.path, path)


def match_path(template: str, path: str) -> dict[str, str] | None:
    """The path parameters when ``path`` fits ``template``, else None."""
    want = template.strip("/").split("/")
    got = path.strip("/").split("/")
    if len(want) != len(got):
        return None
    params: dict[str, str] = {}
    for w, g in zip(want, got, strict=True):
        m = _PARAM.match(w)
        if m:
            if not g:
                return None
            params[m.group(1)] = g
        elif w != g:
            return None
    return params


def _loads(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def routes_of(inst: Instance) -> list[Route]:
    """The HTTP routes an instance advertises (endpoint metadata ``tidings.http``)."""
    out = []
    group = inst.metadata.get(INSTANCE_GROUP_KEY)
    for ep in inst.endpoints:
        spec = ep.metadata.get("tidings.http")
        if not spec:
            continue
        try:
            method, path = http_route(spec).split(" ", 1)
        except BadRequest:
            continue
        out.append(
            Route(
                method=method,
                path=path,
                service=inst.name,
                topic=ep.topic,
                kind="request" if ep.kind == "request" else "command",
                version=ep.version or inst.version,
                schema=_loads(ep.metadata.get("tidings.schema")),
                returns=_loads(ep.metadata.get("tidings.returns")),
                idempotent_handler=ep.metadata.get("tidings.idempotent") == "true",
                instances={inst.id},
                groups={group: {inst.id}} if group else {},
            )
        )
    return out


def static_routes(path: str | Path) -> list[Route]:
    """Routes from a TOML file::

    [[route]]
    http = "POST /v1/quotes"
    service = "pricing"
    topic = "pricing.quote"
    kind = "request"          # or "command"
    version = "1.0.0"         # optional
    timeout = 2.0             # optional, seconds
    schema = "schemas/quote.json"   # optional JSON Schema file (relative to the TOML)
    """
    file = Path(path)
    try:
        doc = tomllib.loads(file.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BadRequest(f"cannot read the routes file {file}: {exc}") from exc
    out = []
    for i, raw in enumerate(doc.get("route") or []):
        where = f"{file} [[route]] #{i + 1}"
        missing = [k for k in ("http", "service", "topic") if k not in raw]
        if missing:
            raise BadRequest(f"{where}: missing {', '.join(missing)}")
        kind = raw.get("kind", "request")
        if kind not in ("request", "command"):
            raise BadRequest(f"{where}: kind is 'request' or 'command', got {kind!r}")
        method, route_path = http_route(raw["http"]).split(" ", 1)
        version = raw.get("version")
        if version is not None:
            major_of(str(version))
        schema = None
        if raw.get("schema"):
            schema_file = file.parent / raw["schema"]
            try:
                schema = json.loads(schema_file.read_text())
            except (OSError, ValueError) as exc:
                raise BadRequest(f"{where}: cannot read the schema {schema_file}: {exc}") from exc
        out.append(
            Route(
                method=method,
                path=route_path,
                service=str(raw["service"]),
                topic=str(raw["topic"]),
                kind=kind,
                version=str(version) if version is not None else None,
                schema=schema,
                idempotent_handler=bool(raw.get("idempotent", False)),
                timeout=float(raw["timeout"]) if "timeout" in raw else None,
                description=str(raw.get("description", "")),
                static=True,
            )
        )
    return out


class RouteTable:
    """Every known route; :meth:`update` folds in the registry's live instances."""

    def __init__(self, static: Iterable[Route] = ()) -> None:
        self.routes: dict[str, Route] = {r.key: r for r in static}

    def update(self, instances: Iterable[Instance]) -> None:
        """Learn the routes of ``instances``; a route nobody serves any more stays known
        (answered 503 while its service is away) with no live instance."""
        seen: dict[str, Route] = {}
        for inst in instances:
            if inst.ready is False:
                continue
            for route in routes_of(inst):
                prev = seen.get(route.key)
                if prev is None:
                    seen[route.key] = route
                else:
                    prev.instances |= route.instances
                    for group, ids in route.groups.items():
                        prev.groups.setdefault(group, set()).update(ids)
        for key, route in seen.items():
            old = self.routes.get(key)
            if old is not None and old.static:
                old.instances, old.groups = route.instances, route.groups
                continue
            if old is not None and old.timeout is not None:
                route.timeout = old.timeout
            self.routes[key] = route
        for key, route in self.routes.items():
            if key not in seen and not route.static:
                route.instances, route.groups = set(), {}

    def find(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes.values():
            params = route.match(method, path)
            if params is not None:
                return route, params
        return None

    def methods_for(self, path: str) -> list[str]:
        return sorted(
            {r.method for r in self.routes.values() if match_path(r.path, path) is not None}
        )

    def versions_for(self, path: str) -> list[str]:
        """The majors served for ``path`` in other versions (``/v3/quotes`` -> ["1", "2"])."""
        m = _VERSIONED.match(path)
        if not m:
            return []
        rest = m.group(2)
        return sorted(
            {
                r.major
                for r in self.routes.values()
                if r.major and match_path(r.unversioned, rest) is not None
            },
            key=int,
        )

    def __iter__(self) -> Iterator[Route]:
        return iter(sorted(self.routes.values(), key=lambda r: (r.path, r.method)))
