"""Opening connections for a NativeTransport: the first connect, the reconnect loop with
backoff and jitter, restoring reply topics and subscriptions, and client heartbeats."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from typing import TYPE_CHECKING

from ...errors import (
    ConnectionLost,
    ProtocolError,
    TidingsError,
    Timeout,
    TransportUnavailable,
    Unauthorized,
)
from ...protocol import constants as c
from ...protocol import messages as m
from ...protocol.foreign import describe
from ...resilience.backoff import Backoff
from .connection import Connection, Disconnected, ForeignServer
from .tls import client_context

if TYPE_CHECKING:
    from .transport import NativeTransport

log = logging.getLogger("tidings.transports.tidings")


class Reconnector:
    def __init__(self, transport: NativeTransport) -> None:
        self.t = transport
        self.task: asyncio.Task[None] | None = None
        self.heartbeat_task: asyncio.Task[None] | None = None
        opts = transport.options
        # delays initial * 2**n capped at backoff_max, each drawn from [delay/2, delay]
        self.backoff = Backoff(opts.backoff_initial, 2.0, opts.backoff_max, jitter=0.5).sequence()

    async def open_once(self) -> None:
        conn, welcome = await self._open()
        self._connected(conn, welcome)

    def ensure_running(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(
                self._run(), name="tidings-reconnect"
            )

    def stop(self) -> None:
        for task in (self.task, self.heartbeat_task):
            if task is not None and task is not asyncio.current_task():
                task.cancel()

    async def _open(self) -> tuple[Connection, m.Welcome]:
        t = self.t
        opts = t.options
        loop = asyncio.get_running_loop()
        hostport = f"{opts.host}:{opts.port}"
        conn: Connection | None = None
        try:
            async with asyncio.timeout(opts.connect_timeout):
                ctx = client_context(opts)
                server_name = None if ctx is None else opts.tls_server_name or opts.host
                _, conn = await loop.create_connection(
                    lambda: Connection(t.on_push, t.on_lost),
                    opts.host,
                    opts.port,
                    ssl=ctx,
                    server_hostname=server_name,
                )
                try:
                    welcome = await conn.handshake(t.client_name(), opts.token, opts.user)
                except BaseException:
                    conn.abort()
                    raise
        except TimeoutError as exc:
            if conn is not None and not conn.answer:
                raise Timeout(
                    f"{hostport} accepted the connection but did not answer the tidings HELLO "
                    f"within {opts.connect_timeout}s: is it a tidings broker? (An HTTP server, "
                    "for one, waits silently; the broker's default port is 7420)"
                ) from exc
            raise Timeout(
                f"connecting to {t.address} took longer than {opts.connect_timeout}s"
            ) from exc
        except ForeignServer as exc:
            raise TransportUnavailable(describe(hostport, exc.answer)) from exc
        except Disconnected as exc:
            raise TransportUnavailable(f"{t.address} closed the connection: {exc}") from exc
        except ssl.SSLError as exc:
            raise TransportUnavailable(
                f"TLS with {t.address} failed: {exc.reason or exc}. Check tls_ca (the CA that "
                "signed the broker's certificate), tls_server_name, and the client certificate "
                "if the broker requires one"
            ) from exc
        except OSError as exc:
            raise TransportUnavailable(
                f"cannot connect to {t.address}: {exc.strerror or exc}. Is the broker running? "
                "Start one with `tidings broker` (or `python -m tidings.server`)"
            ) from exc
        return conn, welcome

    def _connected(self, conn: Connection, welcome: m.Welcome) -> None:
        self.backoff.reset()
        self.t.connected(conn, welcome)
        if self.heartbeat_task is not None:
            self.heartbeat_task.cancel()
        self.heartbeat_task = asyncio.get_running_loop().create_task(
            self._heartbeat(conn, self.t.options.heartbeat or welcome.heartbeat),
            name="tidings-heartbeat",
        )

    async def _run(self) -> None:
        t = self.t
        loop = asyncio.get_running_loop()
        started = loop.time()
        limit = t.options.reconnect_timeout
        while t.closed is None:
            try:
                conn, welcome = await self._open()
                await self._restore(conn)
            except (ProtocolError, Unauthorized) as exc:  # retrying cannot help
                log.error("reconnecting to %s failed: %s", t.address, exc)
                t._give_up(ConnectionLost(f"cannot reconnect to {t.address}: {exc}"))
                return
            except (TidingsError, OSError, Disconnected) as exc:
                if limit is not None and loop.time() - started >= limit:
                    t._give_up(
                        ConnectionLost(
                            f"gave up reconnecting to {t.address} after {limit:.0f}s: {exc}"
                        )
                    )
                    return
                delay = self.backoff.next()
                log.info("broker %s unavailable (%s); retrying in %.2fs", t.address, exc, delay)
                await asyncio.sleep(delay)
                continue
            if t.closed is not None:
                conn.close()
                return
            log.info("reconnected to %s", t.address)
            self._connected(conn, welcome)
            t._set_ready(None)
            return

    async def _restore(self, conn: Connection) -> None:
        """Re-create this client's reply topics and re-join its groups on ``conn``."""
        t = self.t
        waits = [
            (name, conn.request(c.CREATE_REPLY_TOPIC, m.CreateReplyTopic(name)))
            for name in t.reply_topics
        ]
        for name, fut in waits:
            with contextlib.suppress(TidingsError):
                got: m.TopicName = await fut
                if got.name != name:  # the broker would not give it back (another user?)
                    log.warning(
                        "reply topic %r could not be reclaimed after reconnecting (got %r): "
                        "replies to requests sent before are lost",
                        name,
                        got.name,
                    )
            if conn.closed:
                raise Disconnected("connection lost while restoring state")
        await asyncio.gather(*(t._join(sub, conn) for sub in list(t.members)))

    async def _heartbeat(self, conn: Connection, interval: float) -> None:
        dead_after = interval * c.HEARTBEAT_MISSES
        while not conn.closed:
            await asyncio.sleep(interval / 2)
            now = time.monotonic()
            if now - conn.last_received > dead_after:
                log.warning(
                    "no frame from %s for %.1fs; treating the connection as dead",
                    self.t.address,
                    now - conn.last_received,
                )
                conn.abort()
                return
            if now - conn.last_sent >= interval / 2:
                conn.send(c.HEARTBEAT, m.Empty())
                conn.last_sent = now
