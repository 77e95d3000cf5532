"""ServerConfig: the broker server's settings, from command-line arguments and ``TIDINGS_*``
environment variables (arguments win over the environment, which wins over the defaults)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from ..errors import BadRequest
from ..model import DEFAULT_MAX_MESSAGE_SIZE
from ..protocol import constants as c
from .tracing import check_sample, parse_patterns

Fsync = Literal["batch", "interval", "never"]
Deliver = Literal["written", "durable"]


@dataclasses.dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = c.DEFAULT_PORT  # 0 picks a free port (printed at start)
    data_dir: str = "./tidings-data"
    memory: bool = False  # keep everything in memory (nothing survives a restart)
    fsync: Fsync = "batch"  # batch: confirm after fsync; interval: fsync every fsync_interval_ms
    fsync_interval_ms: int = 50
    # written: deliver once written to the OS (fsync running); durable: only after the fsync
    deliver: Deliver = "written"
    max_connections: int = 10_000
    max_frame_size: int = c.DEFAULT_MAX_FRAME_SIZE
    max_message_size: int = 8 * DEFAULT_MAX_MESSAGE_SIZE  # no topic may allow more
    heartbeat: float = c.DEFAULT_HEARTBEAT_INTERVAL  # seconds; silent 3x as long = dead
    write_high_water: int = 1 << 20  # bytes queued to one client before it is paused
    # seconds a client may stay above write_high_water (not reading) before it is closed
    write_deadline: float = 30.0
    # lease periods a member may stay stuck (a lease expired, nothing settled since) before
    # the broker closes it with MemberStuck; 0: never
    stuck_member_leases: int = 3
    log_level: str = "INFO"
    handshake_timeout: float = 10.0  # seconds a new connection has to complete HELLO
    frame_timeout: float = 60.0  # seconds one frame may take to arrive once it has begun
    max_batch: int = 10_000  # messages in one PUBLISH frame at most
    # alarms (as RabbitMQ's): publishes are refused while one is raised
    memory_high_watermark: float = 0.4  # <= 1: fraction of RAM; > 1: bytes of RSS; 0: off
    # bytes free on the data disk at least; 0: off; None: 50 MiB or 5% of the disk if smaller
    disk_free_limit: int | None = None
    # security (docs/security.md)
    users_file: str | None = None  # TOML users with hashed secrets: authentication on
    tls_cert: str | None = None  # PEM certificate (chain): TLS on
    tls_key: str | None = None  # PEM private key (default: inside tls_cert)
    tls_client_ca: str | None = None  # PEM CA: clients must present a certificate it signed
    # HTTP (/livez, /readyz, /metrics, /api/v1; the tidings[http] extra): host:port, or off
    http: str = "127.0.0.1:7421"
    # MQTT 3.1.1 and 5.0 clients (docs/mqtt.md): host:port, or off
    mqtt: str = "off"
    # MQTT over TLS (the --tls-cert/--tls-key/--tls-client-ca settings): host:port, or off
    mqtt_tls: str = "off"
    # MQTT over WebSocket on this path of the HTTP port (subprotocol mqtt), or off
    mqtt_websocket: str = "/mqtt"
    mqtt_max_connections: int = 10_000  # MQTT sessions at once (all MQTT listeners together)
    # largest MQTT packet a client may send; 0: --max-message-size plus 64 KiB
    mqtt_max_packet_size: int = 0
    # longest keep-alive (seconds) a v5 client gets (CONNACK Server Keep Alive); 0: its own
    mqtt_max_keep_alive: int = 0
    # message tracing (docs/tracing.md): topic patterns (comma-separated, '>' all) or off
    trace: str = "off"
    trace_size: int = 100_000  # events the trace ring keeps (the oldest fall off)
    trace_sample: float = 1.0  # fraction of messages traced (by a hash of their id)

    def validate(self) -> ServerConfig:
        if self.fsync not in ("batch", "interval", "never"):
            raise BadRequest(f"fsync must be batch, interval or never, got {self.fsync!r}")
        if self.deliver not in ("written", "durable"):
            raise BadRequest(f"deliver must be written or durable, got {self.deliver!r}")
        if not 0 <= self.port <= 65535:
            raise BadRequest(f"port must be from 0 to 65535, got {self.port}")
        if not 1024 <= self.max_frame_size <= c.MAX_FRAME_SIZE_LIMIT:
            raise BadRequest(f"max frame size must be from 1 KiB to {c.MAX_FRAME_SIZE_LIMIT} bytes")
        if self.max_message_size + 64 * 1024 > self.max_frame_size:
            raise BadRequest(
                f"max message size {self.max_message_size} must be at least 64 KiB below the "
                f"max frame size {self.max_frame_size}: raise --max-frame-size"
            )
        if self.heartbeat <= 0 or self.fsync_interval_ms <= 0 or self.max_connections < 1:
            raise BadRequest("heartbeat, fsync interval and max connections must be positive")
        if self.write_high_water < 1024 or self.write_deadline <= 0:
            raise BadRequest("write high water must be >= 1024 bytes, write deadline positive")
        if self.stuck_member_leases < 0:
            raise BadRequest("max member expiries must be >= 0 (0: never close a stuck member)")
        if self.handshake_timeout <= 0 or self.frame_timeout <= 0 or self.max_batch < 1:
            raise BadRequest("handshake timeout, frame timeout and max batch must be positive")
        if self.memory_high_watermark < 0 or (self.disk_free_limit or 0) < 0:
            raise BadRequest("memory high watermark and disk free limit must be >= 0 (0: off)")
        if self.http.strip().lower() != "off" and self.http.rpartition(":")[1] != ":":
            raise BadRequest(f"--http expects host:port or off, got {self.http!r}")
        if self.mqtt.strip().lower() != "off" and not self.mqtt.rpartition(":")[2].isdigit():
            raise BadRequest(
                f"--mqtt expects host:port (e.g. 127.0.0.1:1883) or off, got {self.mqtt!r}"
            )
        self._validate_mqtt()
        parse_patterns(self.trace)
        check_sample(self.trace_sample)
        if self.trace_size < 1:
            raise BadRequest(f"--trace-size must be at least 1 event, got {self.trace_size}")
        if (self.tls_key or self.tls_client_ca) and not self.tls_cert:
            raise BadRequest("--tls-key and --tls-client-ca need --tls-cert")
        if not self.memory:
            check_data_dir(self.data_dir)
        return self

    def _validate_mqtt(self) -> None:
        tls = self.mqtt_tls.strip().lower()
        if tls != "off" and not self.mqtt_tls.rpartition(":")[2].isdigit():
            raise BadRequest(
                f"--mqtt-tls expects host:port (e.g. 127.0.0.1:8883) or off, got {self.mqtt_tls!r}"
            )
        if tls != "off" and not self.tls_cert:
            raise BadRequest("--mqtt-tls needs --tls-cert (and --tls-key unless it is inside)")
        ws = self.mqtt_websocket.strip()
        if ws.lower() != "off" and not ws.startswith("/"):
            raise BadRequest(f"--mqtt-websocket expects a path like /mqtt or off, got {ws!r}")
        if self.mqtt_max_connections < 1:
            raise BadRequest(
                f"--mqtt-max-connections must be at least 1, got {self.mqtt_max_connections}"
            )
        if not 0 <= self.mqtt_max_keep_alive <= 65535:
            raise BadRequest(
                f"--mqtt-max-keep-alive must be from 0 (off) to 65535 seconds, "
                f"got {self.mqtt_max_keep_alive}"
            )
        size = self.mqtt_max_packet_size
        if size and not 1024 <= size <= self.max_message_size + 64 * 1024:
            raise BadRequest(
                f"--mqtt-max-packet-size must be from 1024 to --max-message-size plus 64 KiB "
                f"({self.max_message_size + 64 * 1024}), or 0 for that, got {size}"
            )

    def mqtt_enabled(self) -> bool:
        """True when any MQTT listener is on (the WebSocket path serves only then)."""
        return self.mqtt.strip().lower() != "off" or self.mqtt_tls.strip().lower() != "off"


def check_data_dir(path: str) -> None:
    """BadRequest when ``path`` (or a parent of it) is an existing file: the store would fail
    with a bare "File exists" / "Not a directory"."""
    if os.path.isfile(path):
        raise BadRequest(f"--data {path} is a file; give a directory (it is created if missing)")
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent and os.path.isfile(parent):
        raise BadRequest(f"--data {path}: {parent} is a file; give a directory")


# option name -> (environment variable, type, help): the one option set of both entry points,
# `python -m tidings.server` (argparse, below) and `tidings broker` (tidings.cli.broker)
OPTIONS: dict[str, tuple[str, type, str]] = {
    "host": ("TIDINGS_HOST", str, "address to bind (default 127.0.0.1: this machine only)"),
    "port": ("TIDINGS_PORT", int, "TCP port (default 7420; 0 picks a free one)"),
    "data_dir": ("TIDINGS_DATA", str, "data directory (default ./tidings-data)"),
    "memory": ("TIDINGS_MEMORY", bool, "keep messages in memory only (lost on restart)"),
    "fsync": ("TIDINGS_FSYNC", str, "batch (default), interval or never"),
    "fsync_interval_ms": ("TIDINGS_FSYNC_INTERVAL_MS", int, "fsync period for --fsync interval"),
    "deliver": (
        "TIDINGS_DELIVER",
        str,
        "written (default: deliver while the fsync runs) or durable (only after it)",
    ),
    "max_connections": ("TIDINGS_MAX_CONNECTIONS", int, "client connections accepted at once"),
    "max_frame_size": ("TIDINGS_MAX_FRAME_SIZE", int, "largest protocol frame, bytes"),
    "max_message_size": ("TIDINGS_MAX_MESSAGE_SIZE", int, "largest message any topic allows"),
    "heartbeat": ("TIDINGS_HEARTBEAT", float, "heartbeat interval, seconds"),
    "write_high_water": (
        "TIDINGS_WRITE_HIGH_WATER",
        int,
        "bytes buffered for one client before the broker stops sending to it (default 1 MiB)",
    ),
    "write_deadline": (
        "TIDINGS_WRITE_DEADLINE",
        float,
        "seconds a client may stay above --write-high-water before it is closed (default 30)",
    ),
    "stuck_member_leases": (
        "TIDINGS_STUCK_MEMBER_LEASES",
        int,
        "close a subscription that settled nothing for this many lease periods after one of "
        "its leases expired (default 3; 0 = never); stuck members show in group stats",
    ),
    "log_level": ("TIDINGS_LOG_LEVEL", str, "DEBUG, INFO (default), WARNING or ERROR"),
    "handshake_timeout": ("TIDINGS_HANDSHAKE_TIMEOUT", float, "seconds to complete HELLO"),
    "frame_timeout": (
        "TIDINGS_FRAME_TIMEOUT",
        float,
        "seconds a frame may take to arrive once begun (default 60)",
    ),
    "max_batch": ("TIDINGS_MAX_BATCH", int, "messages per PUBLISH frame at most"),
    "memory_high_watermark": (
        "TIDINGS_MEMORY_HIGH_WATERMARK",
        float,
        "refuse publishes above this memory: a fraction of RAM (<= 1) or bytes; 0 = off",
    ),
    "disk_free_limit": (
        "TIDINGS_DISK_FREE_LIMIT",
        int,
        "refuse publishes while the data disk has fewer free bytes (default: 50 MiB, or 5% of "
        "the disk if that is less); 0 = off",
    ),
    "users_file": ("TIDINGS_USERS_FILE", str, "TOML users file: authentication required"),
    "tls_cert": ("TIDINGS_TLS_CERT", str, "PEM certificate: serve TLS"),
    "tls_key": ("TIDINGS_TLS_KEY", str, "PEM private key of --tls-cert"),
    "tls_client_ca": ("TIDINGS_TLS_CLIENT_CA", str, "PEM CA: require client certificates"),
    "http": (
        "TIDINGS_HTTP",
        str,
        "HTTP (/livez, /readyz, /metrics, /api/v1) on host:port (default 127.0.0.1:7421) or off",
    ),
    "mqtt": (
        "TIDINGS_MQTT",
        str,
        "serve MQTT 3.1.1 and 5.0 clients on host:port (e.g. 127.0.0.1:1883; default off)",
    ),
    "mqtt_tls": (
        "TIDINGS_MQTT_TLS",
        str,
        "serve MQTT over TLS on host:port (e.g. 127.0.0.1:8883; default off) with the "
        "--tls-cert, --tls-key and --tls-client-ca of the native port",
    ),
    "mqtt_websocket": (
        "TIDINGS_MQTT_WEBSOCKET",
        str,
        "MQTT over WebSocket on this path of the --http port while MQTT is on "
        "(default /mqtt; subprotocol mqtt) or off",
    ),
    "mqtt_max_connections": (
        "TIDINGS_MQTT_MAX_CONNECTIONS",
        int,
        "MQTT sessions at once, all MQTT listeners together (default 10000); one more gets "
        "CONNACK 0x97 quota exceeded (3.1.1: 3 server unavailable)",
    ),
    "mqtt_max_packet_size": (
        "TIDINGS_MQTT_MAX_PACKET_SIZE",
        int,
        "largest MQTT packet a client may send, bytes (default 0: --max-message-size plus "
        "64 KiB); larger gets DISCONNECT 0x95",
    ),
    "mqtt_max_keep_alive": (
        "TIDINGS_MQTT_MAX_KEEP_ALIVE",
        int,
        "longest keep-alive of an MQTT 5.0 client, seconds (a longer one or 0 is replaced, "
        "told in CONNACK's Server Keep Alive); default 0: the client's own",
    ),
    "trace": (
        "TIDINGS_TRACE",
        str,
        "trace the messages of these topics: comma-separated patterns ('>' = all) or off (default)",
    ),
    "trace_size": ("TIDINGS_TRACE_SIZE", int, "trace events kept (default 100000)"),
    "trace_sample": (
        "TIDINGS_TRACE_SAMPLE",
        float,
        "fraction of the traced topics' messages to trace (default 1)",
    ),
}


def _parse_bool(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def flags_of(name: str) -> list[str]:
    """The command-line flags of option ``name`` (``data_dir`` is ``--data``/``--data-dir``)."""
    flag = "--" + name.replace("_", "-")
    return ["--data", flag] if name == "data_dir" else [flag]


def argv_for(values: Mapping[str, object]) -> list[str]:
    """Arguments for :func:`config_from` from option values (None and False are left out)."""
    argv: list[str] = []
    for name, value in values.items():
        if name not in OPTIONS:
            raise BadRequest(f"unknown broker option {name!r}")
        if value is None or value is False:
            continue
        flag = flags_of(name)[0]
        argv += [flag] if value is True else [flag, str(value)]
    return argv


def parser(prog: str = "python -m tidings.server") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Run the tidings broker. Every option can also come from its TIDINGS_* "
        "environment variable.",
    )
    for name, (env, kind, help_text) in OPTIONS.items():
        flags = flags_of(name)
        if kind is bool:
            p.add_argument(*flags, dest=name, action="store_true", default=None, help=help_text)
        else:
            p.add_argument(*flags, dest=name, type=kind, default=None, help=f"{help_text} [{env}]")
    return p


def config_from(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> ServerConfig:
    """Build a validated ServerConfig from arguments and the environment."""
    environ = os.environ if environ is None else environ
    args = parser().parse_args(list(argv) if argv is not None else [])
    values: dict[str, Any] = {}  # each of the type OPTIONS gives it; validate() checks
    for name, (env, kind, _) in OPTIONS.items():
        raw = environ.get(env)
        if raw not in (None, ""):
            try:
                values[name] = _parse_bool(raw) if kind is bool else kind(raw)
            except ValueError as exc:
                raise BadRequest(f"bad value {raw!r} for {env}: expected {kind.__name__}") from exc
        given = getattr(args, name)
        if given is not None:
            values[name] = given
    if isinstance(values.get("log_level"), str):
        values["log_level"] = str(values["log_level"]).upper()
    return ServerConfig(**values).validate()
