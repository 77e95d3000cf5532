"""What AMQP 0-9-1 cannot tell, read from RabbitMQ's management HTTP API.

AMQP has no way to read an exchange's arguments (where a topic's settings live) or a queue's
un-acknowledged count (a group's in-flight messages), so ``amqp://`` asks the management
plugin (``rabbitmq-plugins enable rabbitmq_management``), by default at
``http://<amqp host>:15672`` with the AMQP credentials, or at the URL's ``?management=``.
Its figures are as fresh as the server's ``collect_statistics_interval`` (5 s by default).
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import quote

import httpx

from ...errors import NotFound, TransportUnavailable, Unauthorized

TIMEOUT = 10.0
PAGE_SIZE = 500


class Management:
    def __init__(self, base: str, vhost: str, user: str, password: str) -> None:
        self.base = base.rstrip("/")
        self.vhost = vhost
        self._auth = (user, password)
        self._http: httpx.AsyncClient | None = None
        self._answered = False  # it answered once: a later silence is an outage, not a setup

    async def start(self) -> None:
        self._http = httpx.AsyncClient(auth=self._auth, timeout=TIMEOUT)
        await self.get("/api/whoami")

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _v(self) -> str:
        return quote(self.vhost, safe="")

    async def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        assert self._http is not None, "Management.start() first"
        try:
            resp = await self._http.get(self.base + path, params=params)
        except httpx.HTTPError as exc:
            if self._answered:
                raise TransportUnavailable(
                    f"the RabbitMQ management API at {self.base} did not answer ({exc}): "
                    "RabbitMQ may be restarting or unreachable; retry later"
                ) from exc
            raise TransportUnavailable(
                f"the RabbitMQ management API at {self.base} did not answer ({exc}): amqp:// "
                "reads topic settings and stats through it; enable the plugin "
                "(rabbitmq-plugins enable rabbitmq_management) or name it with "
                "?management=http://host:15672 in the URL"
            ) from exc
        self._answered = True
        if resp.status_code == 404:
            raise NotFound(f"not found in RabbitMQ: {path}")
        if resp.status_code in (401, 403):
            raise Unauthorized(
                f"the RabbitMQ management API refused the credentials ({resp.status_code}): "
                "the user needs the 'monitoring' (or 'management') tag"
            )
        if resp.status_code >= 400:
            raise TransportUnavailable(
                f"the RabbitMQ management API answered {resp.status_code}: {resp.text[:200]}"
            )
        return resp.json()

    async def exchange(self, name: str) -> dict[str, Any]:
        return cast(
            dict[str, Any], await self.get(f"/api/exchanges/{self._v()}/{quote(name, safe='')}")
        )

    async def exchanges(self) -> list[dict[str, Any]]:
        rows = await self.get(f"/api/exchanges/{self._v()}", {"columns": "name,arguments"})
        return cast(list[dict[str, Any]], rows)

    async def queues(self, prefix: str) -> list[dict[str, Any]]:
        """The vhost's queues whose name starts with ``prefix`` (with their stats). The API
        filters by name only on paginated requests: pages of PAGE_SIZE are read to the end."""
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            rows = await self.get(
                f"/api/queues/{self._v()}",
                {
                    "columns": "name,arguments,messages_ready,messages_unacknowledged,consumers,"
                    "message_stats,message_bytes",
                    "name": "^" + _regex(prefix),
                    "use_regex": "true",
                    "page": str(page),
                    "page_size": str(PAGE_SIZE),
                },
            )
            if isinstance(rows, list):  # an API without pagination: everything at once
                items, pages = rows, 1
            else:
                items, pages = rows.get("items", []), int(rows.get("page_count") or 1)
            out += [r for r in items if str(r.get("name", "")).startswith(prefix)]
            if page >= pages:
                return out
            page += 1


def _regex(text: str) -> str:
    return "".join("\\" + c if c in r".^$*+?()[]{}|\/" else c for c in text)
