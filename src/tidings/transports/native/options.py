"""Connection options of the ``tidings://`` transport, from the URL and keyword arguments.

``tidings://host:port?connect_timeout=5&timeout=30&reconnect_timeout=60&name=billing``;
keyword arguments given to the transport override the URL's query.
"""

from __future__ import annotations

import dataclasses
import os
from urllib.parse import parse_qsl, urlsplit

from ...errors import BadRequest
from ...protocol import constants as c


@dataclasses.dataclass(frozen=True)
class NativeOptions:
    host: str = "127.0.0.1"
    port: int = c.DEFAULT_PORT
    name: str = ""  # client name shown in the broker's logs
    token: str | None = None  # authentication token (placeholder until auth lands)
    connect_timeout: float = 10.0  # seconds for TCP connect + handshake
    timeout: float = 30.0  # seconds an operation may take, reconnect waits included
    reconnect: bool = True
    reconnect_timeout: float | None = 60.0  # give up after this long without a broker
    backoff_initial: float = 0.05
    backoff_max: float = 2.0
    heartbeat: float | None = None  # default: what the broker proposes
    auto_msg_id: bool = True  # give every published message a producer id (safe retries)

    @classmethod
    def parse(cls, url: str, **overrides: object) -> NativeOptions:
        parts = urlsplit(url)
        if parts.scheme != "tidings":
            raise BadRequest(f"not a tidings:// URL: {url!r}")
        values: dict[str, object] = {}
        try:
            values["host"] = parts.hostname or "127.0.0.1"
            values["port"] = parts.port or c.DEFAULT_PORT
        except ValueError as exc:
            raise BadRequest(f"bad tidings:// URL {url!r}: {exc}") from exc
        if parts.password or parts.username:
            values["token"] = parts.password or parts.username
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key, raw in parse_qsl(parts.query):
            if key not in fields or key in ("host", "port"):
                raise BadRequest(f"unknown tidings:// URL option {key!r}; known: {sorted(fields)}")
            values[key] = raw
        values.update(overrides)
        if "token" not in values and os.environ.get("TIDINGS_TOKEN"):
            values["token"] = os.environ["TIDINGS_TOKEN"]
        for key in list(values):
            if key not in fields:
                raise BadRequest(f"unknown tidings:// option {key!r}; known: {sorted(fields)}")
            values[key] = _convert(key, values[key], fields[key].type)
        return cls(**values)  # type: ignore[arg-type]


def _convert(key: str, value: object, annotation: object) -> object:
    if not isinstance(value, str):
        return value
    text = str(annotation)
    try:
        if value.lower() in ("none", "") and "None" in text:
            return None
        if text.startswith("bool"):
            return value.lower() in ("1", "true", "yes", "on")
        if text.startswith("int"):
            return int(value)
        if text.startswith("float"):
            return float(value)
    except ValueError as exc:
        raise BadRequest(f"bad value {value!r} for tidings:// option {key!r}") from exc
    return value
