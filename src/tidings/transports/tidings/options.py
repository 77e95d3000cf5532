"""Connection options of the ``tidings://`` transport, from the URL and keyword arguments.

``tidings://host:port?connect_timeout=5&timeout=30&reconnect_timeout=60&name=billing``;
keyword arguments given to the transport override the URL's query. Credentials come from the
URL (``tidings://user:password@host`` or ``tidings://TOKEN@host``), the ``user``/``token``
options or ``TIDINGS_USER``/``TIDINGS_TOKEN``. ``tidings+tls://`` (or ``tls=true``) turns TLS
on; ``tls_ca``, ``tls_cert``, ``tls_key``, ``tls_verify`` and ``tls_server_name`` tune it, or
pass a ready ``ssl_context``.
"""

from __future__ import annotations

import dataclasses
import os
import ssl
from urllib.parse import parse_qsl, unquote, urlsplit

from ...errors import BadRequest
from ...protocol import constants as c


@dataclasses.dataclass(frozen=True)
class NativeOptions:
    host: str = "127.0.0.1"
    port: int = c.DEFAULT_PORT
    name: str = ""  # client name shown in the broker's logs
    token: str | None = None  # the secret: a token, or the password of ``user``
    user: str | None = None
    tls: bool = False
    tls_ca: str | None = None  # PEM CA file to verify the broker (default: the system's)
    tls_cert: str | None = None  # PEM client certificate, when the broker requires one
    tls_key: str | None = None
    tls_verify: bool = True  # False: accept any broker certificate (testing only)
    tls_server_name: str | None = None  # the name the broker's certificate must carry
    ssl_context: ssl.SSLContext | None = None  # ready-made: overrides the tls_* options
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
        if parts.scheme not in ("tidings", "tidings+tls"):
            raise BadRequest(f"not a tidings:// or tidings+tls:// URL: {url!r}")
        values: dict[str, object] = {"tls": True} if parts.scheme == "tidings+tls" else {}
        try:
            values["host"] = parts.hostname or "127.0.0.1"
            values["port"] = parts.port or c.DEFAULT_PORT
        except ValueError as exc:
            raise BadRequest(f"bad tidings:// URL {url!r}: {exc}") from exc
        if parts.password is not None:
            values["user"] = unquote(parts.username or "")
            values["token"] = unquote(parts.password)
        elif parts.username:
            values["token"] = unquote(parts.username)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key, raw in parse_qsl(parts.query):
            if key not in fields or key in ("host", "port", "ssl_context"):
                raise BadRequest(f"unknown tidings:// URL option {key!r}; known: {sorted(fields)}")
            values[key] = raw
        values.update(overrides)
        if "token" not in values and os.environ.get("TIDINGS_TOKEN"):
            values["token"] = os.environ["TIDINGS_TOKEN"]
            if "user" not in values and os.environ.get("TIDINGS_USER"):
                values["user"] = os.environ["TIDINGS_USER"]
        for key in list(values):
            if key not in fields:
                raise BadRequest(f"unknown tidings:// option {key!r}; known: {sorted(fields)}")
            values[key] = _convert(key, values[key], fields[key].type)
        return cls(**values)  # type: ignore[arg-type]  # each value _convert-ed to its field's type


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
