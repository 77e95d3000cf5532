"""BrokerServer: the broker engine behind a TCP listener speaking the native protocol.

Owns the runtime (store, group commit, timers), the listening socket, the set of client
connections and the heartbeat loop. ``stop()`` is the graceful shutdown: stop accepting, let
in-flight publishes finish, say GOODBYE, leave every group (un-acked deliveries return to
their queues), close the connections and make a final flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from typing import TYPE_CHECKING

from ..broker import BrokerRuntime
from ..broker.latency import LatencyHistogram
from ..errors import NotFound, Overloaded, Timeout
from ..protocol import constants as c
from ..protocol.messages import Empty, ServerStats, SubClosed
from .auth import Authenticator
from .config import ServerConfig
from .connection import ClientConnection
from .limits import CHECK_INTERVAL, Alarms
from .stores import open_store
from .tls import server_context
from .tracing import TracePersister, configure, make_tracer, parse_patterns

if TYPE_CHECKING:
    from .mqtt.listener import MqttListener

log = logging.getLogger("tidings.server")

SHUTDOWN_GRACE = 5.0  # seconds in-flight publishes get to finish at shutdown

# What the built-in broker can do, by the capability names of tidings.transports.base (the
# server may not import transports; a test keeps the two lists equal).
CAPABILITIES = frozenset(
    {
        "ordered",
        "key_ordered",
        "ttl",
        "delay",
        "dedup",
        "auto_ack",
        "work_queue",
        "start_time",
        "start_offset",
        "group_reset",
        "dead_letter_expired",
        "redrive",
        "prefetch_bytes",
    }
)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("tidings")
    except Exception:
        return "0.1.0"


class BrokerServer:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config.validate()
        self.store, self.store_description = open_store(config)
        self.runtime = BrokerRuntime(
            self.store,
            fsync=config.fsync,
            fsync_interval=config.fsync_interval_ms / 1000,
            deliver=config.deliver,
            stuck_member_leases=config.stuck_member_leases,
        )
        patterns = parse_patterns(config.trace)
        self.tracer = make_tracer(patterns, config.trace_size, config.trace_sample)
        configure(self.runtime.broker, self.tracer, patterns)
        self.trace_log = (
            None if config.memory else TracePersister(self.tracer, os.path.abspath(config.data_dir))
        )
        self.auth = Authenticator.from_file(config.users_file)
        self.ssl = (
            server_context(config.tls_cert, config.tls_key, config.tls_client_ca)
            if config.tls_cert
            else None
        )
        data_dir = None if config.memory else os.path.abspath(config.data_dir)
        self.alarms = Alarms(config.memory_high_watermark, config.disk_free_limit, data_dir)
        self.version = _version()
        self.server_version = f"tidings/{self.version}"
        self.capabilities = CAPABILITIES
        self.connections: set[ClientConnection] = set()
        self.mqtt: MqttListener | None = None  # the MQTT ports (set by mqtt.start_mqtt)
        self.paused = 0
        self.max_buffered = 0
        # for the metrics: seconds from a publish run's append to its confirm, per frame;
        # PUBLISH payload bytes per topic (counted once per run)
        self.publish_latency = LatencyHistogram()
        self.published_bytes: dict[str, int] = {}
        self.started = time.monotonic()
        self.address: tuple[str, int] | None = None
        self._listener: asyncio.AbstractServer | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._alarm_task: asyncio.Task[None] | None = None
        self._conn_seq = 0
        self._instance = secrets.token_hex(2)

    @property
    def url(self) -> str:
        assert self.address is not None, "the server is not started"
        return f"tidings://{self.address[0]}:{self.address[1]}"

    async def start(self) -> tuple[str, int]:
        """Recover the store and start listening; returns the bound (host, port)."""
        report = await self.runtime.start()
        log.info(
            "store: %s; recovered %d topics, %d messages in %.2fs%s",
            self.store_description,
            report.topics,
            report.messages,
            report.seconds,
            f"; truncated damaged tails: {report.truncated}" if report.truncated else "",
        )
        loop = asyncio.get_running_loop()
        self.alarms.check()
        self.alarms.explain_at_start()
        self._listener = await loop.create_server(
            self._new_connection, self.config.host, self.config.port, backlog=1024, ssl=self.ssl
        )
        sock = self._listener.sockets[0]
        host, port = sock.getsockname()[:2]
        self.address = (host, port)
        self._heartbeat_task = loop.create_task(self._heartbeats(), name="tidings-heartbeats")
        self._alarm_task = loop.create_task(self._watch_alarms(), name="tidings-alarms")
        if self.trace_log is not None:
            restored = self.trace_log.restore()
            if restored:
                where = self.trace_log.log.dir
                log.info("message trace: %d events restored from %s", restored, where)
            self.trace_log.start()
        return self.address

    def describe_security(self) -> str:
        """One line for the start-up log: who may connect and how."""
        auth = (
            f"authentication required ({len(self.auth.users)} users from {self.auth.source})"
            if self.auth.enabled
            else "no authentication"
        )
        if self.auth.anonymous is not None:
            auth += ", clients without credentials get the 'anonymous' entry's rights"
        if self.ssl is None:
            tls = "no TLS"
        elif self.config.tls_client_ca:
            tls = "TLS with client certificates required"
        else:
            tls = "TLS"
        return f"{auth}, {tls}, {self.alarms.describe()}"

    async def _watch_alarms(self) -> None:
        while True:
            await asyncio.sleep(CHECK_INTERVAL)
            try:
                self.alarms.check(sum(c.buffered() for c in self.connections))
                if self.alarms.memory is not None:
                    self._close_slow_consumers(time.monotonic(), "the memory alarm is raised")
            except Exception:  # never let the watcher die
                log.exception("checking resource alarms failed")

    def _close_slow_consumers(self, now: float, why: str, older_than: float = 0.0) -> None:
        """Close the connections whose write buffer has been over the high-water mark for more
        than ``older_than`` seconds: clients that do not read what they asked for."""
        for conn in list(self.connections):
            since = conn.over_since
            if since is None or now - since <= older_than or conn.closed:
                continue
            waiting = conn.buffered()
            log.warning(
                "closing connection %s (%s): %d bytes waiting to be read for %.1fs, above the "
                "write high-water mark of %d bytes (%s); its un-acked deliveries return to "
                "their groups",
                conn.id, conn.peer, waiting, now - since, self.config.write_high_water, why,
            )  # fmt: skip
            conn.fail(
                Overloaded(
                    f"slow consumer: {waiting} bytes waited to be read for {now - since:.0f}s "
                    f"({why}); read deliveries as they come, lower prefetch, or ask the "
                    "operator to raise --write-deadline"
                )
            )
            conn.abort()

    def _new_connection(self) -> ClientConnection:
        self._conn_seq += 1
        return ClientConnection(self, f"{self._instance}-{self._conn_seq}")

    def admit(self, conn: ClientConnection) -> bool:
        if len(self.connections) >= self.config.max_connections:
            log.warning("refusing %s: %d connections open", conn.peer, len(self.connections))
            return False
        self.connections.add(conn)
        return True

    def forget(self, conn: ClientConnection) -> None:
        self.connections.discard(conn)
        if conn.paused:
            conn.paused = False
            self.paused -= 1

    def members_gone(self, topic: str, group: str | None, reason: str) -> None:
        """Tell the clients whose members were removed with a topic or group."""
        for conn in list(self.connections):
            for sub_id, member in list(conn.members.items()):
                spec = member.spec
                if spec.topic == topic and (group is None or spec.name == group):
                    del conn.members[sub_id]
                    conn.write(c.SUB_CLOSED, c.NO_REPLY, SubClosed(sub_id, NotFound.code, reason))

    async def _heartbeats(self) -> None:
        interval = self.config.heartbeat
        dead_after = interval * c.HEARTBEAT_MISSES
        while True:
            await asyncio.sleep(interval / 2)
            now = time.monotonic()
            for conn in list(self.connections):
                if conn.version == 0 and now - conn.opened > self.config.handshake_timeout:
                    log.warning(
                        "connection %s (%s) did not complete the handshake within %.0fs: "
                        "closing it",
                        conn.id,
                        conn.peer,
                        self.config.handshake_timeout,
                    )
                    conn.fail(Timeout("handshake timeout: send HELLO right after connecting"))
                    conn.abort()
                elif (
                    conn.partial_since is not None
                    and now - conn.partial_since > self.config.frame_timeout
                ):
                    log.warning(
                        "connection %s (%s) sent part of a frame and not the rest for %.0fs: "
                        "closing it",
                        conn.id,
                        conn.peer,
                        now - conn.partial_since,
                    )
                    conn.fail(
                        Timeout(
                            f"a frame did not arrive whole within {self.config.frame_timeout:.0f}s "
                            "of its first byte: send frames whole (or raise --frame-timeout)"
                        )
                    )
                    conn.abort()
                elif (
                    conn.over_since is not None
                    and now - conn.over_since > self.config.write_deadline
                ):
                    self._close_slow_consumers(
                        now,
                        f"longer than --write-deadline {self.config.write_deadline:g}s",
                        self.config.write_deadline,
                    )
                elif conn.version and not conn.paused and now - conn.last_received > dead_after:
                    # (a paused connection is not read, so its heartbeats are not seen: the
                    # write deadline above decides for it; before WELCOME a client sends no
                    # heartbeats and a password check may outlast dead_after: the handshake
                    # timeout decides then)
                    log.warning(
                        "connection %s (%s) silent for %.1fs: closing it",
                        conn.id,
                        conn.peer,
                        now - conn.last_received,
                    )
                    conn.abort()
                elif conn.version and now - conn.last_sent >= interval:
                    conn.write(c.HEARTBEAT, c.NO_REPLY, Empty())

    def stats(self) -> ServerStats:
        conns = list(self.connections)
        return ServerStats(
            version=self.version,
            uptime=time.monotonic() - self.started,
            connections=len(conns),
            subscriptions=sum(len(c.members) for c in conns),
            write_buffer_bytes=sum(c.buffered() for c in conns),
            max_write_buffer_bytes=self.max_buffered,
            paused_connections=self.paused,
            frames_in=sum(c.frames_in for c in conns),
            frames_out=sum(c.frames_out for c in conns),
        )

    async def stop(self) -> None:
        """Graceful shutdown (see the module docstring)."""
        if self._listener is not None:
            self._listener.close()
        conns = list(self.connections)
        for conn in conns:
            conn.pause_reading()
        tasks = [t for conn in conns for t in conn.tasks]
        if tasks:
            await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE)
        leased = 0
        for conn in conns:
            leased += sum(1 for _ in conn.members)
            conn.close(goodbye="the broker is shutting down; reconnect later")
            conn.closed = True
            self.forget(conn)
            conn.release()
        if self._alarm_task is not None:
            self._alarm_task.cancel()
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task
        if self.trace_log is not None:
            with contextlib.suppress(Exception):
                await self.trace_log.stop()
        await self.runtime.stop()
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._listener.wait_closed(), 1.0)
        log.info("stopped: %d connections closed, %d members left their groups", len(conns), leased)
