"""Service: typed handlers for events, commands and requests, on any transport::

    svc = tidings.Service("payment")  # url: $TIDINGS_URL by default

    @svc.on("order.refunded", idempotent=True, concurrency=8)
    async def refund(event: OrderRefunded, ctx: tidings.Context) -> None: ...

    @svc.reply("payment.status")
    async def status(query: StatusQuery) -> RefundStatus: ...

    svc.run()  # or, in tests and embedding: async with svc.running(): ...

Handlers, outcomes and options are described in docs/service.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..client import AsyncClient
from ..client.positions import StartPosition
from ..client.registry.subjects import INSTANCE_GROUP_KEY, group_topic, major_of, versioned_topic
from ..client.registry.subjects import instance_group as check_instance_group
from ..errors import BadRequest
from ..ids import Snowflake, default_snowflake
from ..logs import setup_logging
from ..model import DEFAULT_MAX_DELIVERIES, Mode, TopicSpec
from ..resilience.backoff import Backoff
from .announce import started_line
from .codecs import Codec, codec_named
from .consumer import Consumer
from .execution import Handled
from .handlers import Handler, HandlerFn, KeyOrdered, build_handler
from .idempotency import DEFAULT_WINDOW, IN_MEMORY_URL, IdempotencyStore, default_url
from .middleware import (
    HandlePlan,
    LoggingMiddleware,
    Middleware,
    handle_chain,
    tracing_middleware,
)
from .payloads import PayloadType
from .publishing import Kind, Publishing
from .registration import HealthCheck, RegistrationAgent
from .registration.agent import DEFAULT_HEARTBEAT
from .runner import run_until_signalled
from .transactions import OutboxWriter, Transaction, Transactions, same_database

log = logging.getLogger("tidings.service")

F = TypeVar("F", bound=HandlerFn)


@dataclass(frozen=True)
class Emits:
    """A message type the service publishes (declared for documentation and AsyncAPI)."""

    topic: str
    payload: PayloadType
    kind: str
    description: str | None = None


class Service(Publishing):
    """A named service: its handlers, its connection, and how it publishes."""

    def __init__(
        self,
        name: str,
        url: str | None = None,
        *,
        codec: str | Codec = "json",
        middleware: Sequence[Middleware] = (),
        default_middleware: bool = True,
        tracing: str = "w3c",
        tracer_provider: Any = None,
        idempotency: str | IdempotencyStore | None = None,
        idempotency_window: float = DEFAULT_WINDOW,
        backoff: Backoff | None = None,
        grace_period: float = 10.0,
        worker_id: int | None = None,
        version: str = "0.1.0",
        description: str | None = None,
        client_options: dict[str, Any] | None = None,
        register: bool = True,
        heartbeat: float | None = DEFAULT_HEARTBEAT,
        health_port: int | None = None,
        health_host: str = "0.0.0.0",
        metadata: dict[str, str] | None = None,
        outbox: OutboxWriter | None = None,
        instance_group: str | None = None,
    ) -> None:
        """``outbox`` (a ``tidings.outbox.Outbox``): handlings run in a transaction on its
        database and ``ctx.publish`` writes to it (:mod:`tidings.service.transactions`).
        ``instance_group`` (default ``$TIDINGS_INSTANCE_GROUP``), like ``canary``: the instance
        advertises it and also consumes its HTTP routes' group topics, so the gateway can
        split traffic between instance groups by weight (docs/gateway.md)."""
        if outbox is not None and not isinstance(outbox, OutboxWriter):
            raise BadRequest(f"outbox= takes a tidings.outbox.Outbox, got {type(outbox).__name__}")
        self.name = name
        self.outbox = outbox
        self._transactions: Transactions | None = None
        self.url = url
        self.codec = codec_named(codec)
        # tracing="otel": OpenTelemetry spans (tidings.service.otel, imported only then)
        self.middleware: list[Middleware] = [*middleware]
        if default_middleware:
            tracer = tracing_middleware(tracing, tracer_provider)
            self.middleware[:0] = [tracer, LoggingMiddleware()]
        self.idempotency = idempotency
        self.idempotency_window = idempotency_window
        self.backoff = backoff or Backoff()
        self.grace_period = grace_period
        self.ids = Snowflake(worker_id) if worker_id is not None else default_snowflake()
        self.version = version
        self.description = description
        self.client_options = dict(client_options or {})
        self.handlers: list[Handler] = []
        self.emitted: list[Emits] = []
        self.topics: dict[str, TopicSpec] = {}
        self.client: AsyncClient | None = None
        self._connecting: asyncio.Future[None] | None = None
        self._consumers: list[Consumer] = []
        self._store: IdempotencyStore | None = None
        self._cleanup: asyncio.Task[None] | None = None
        self._started = False
        self._stop_requested: asyncio.Event | None = None
        self._observers: list[Callable[[Handled], None]] = []
        self._background: list[Callable[[], Awaitable[None]]] = []
        self._background_tasks: list[asyncio.Future[None]] = []
        # discovery (docs/discovery.md): $SRV answers, registry heartbeats, health probes
        major_of(version)  # validates
        self.register = register
        self.heartbeat = heartbeat
        self.health_port = health_port
        self.health_host = health_host
        self.metadata: dict[str, str] = dict(metadata or {})
        group = instance_group or os.environ.get("TIDINGS_INSTANCE_GROUP") or None
        self.instance_group = check_instance_group(group) if group else None
        if self.instance_group:
            self.metadata[INSTANCE_GROUP_KEY] = self.instance_group
        self.health_checks: list[HealthCheck] = []
        self.registration: RegistrationAgent | None = None

    # declaring
    def on(
        self,
        topic: str,
        *,
        group: str | None = None,
        mode: Mode = "shared",
        idempotent: bool = False,
        concurrency: int = 1,
        lease: float = 30.0,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        timeout: float | None = 300.0,
        backoff: Backoff | None = None,
        start: StartPosition = "earliest",
        key_ordered: KeyOrdered = False,
        name: str | None = None,
        version: str | None = None,
        http: str | None = None,
        prefetch_bytes: int | None = None,
    ) -> Callable[[F], F]:
        """Register an event/command handler on ``topic`` in ``group`` (default: the service
        name). Returning acks; raising nacks with backoff; see :mod:`tidings.service`.
        ``concurrency`` handlings run at once; ``prefetch_bytes`` (built-in broker) also caps
        the bytes of the message bodies they hold (the one that crosses it still runs).
        ``key_ordered=True`` asks for one in-flight message per key (refused by engines without
        it); ``"if-supported"`` asks for it where the engine has it, a plain shared group
        elsewhere. ``http="POST /v1/refunds"``: ``tidings gateway`` publishes the route's
        requests here as commands and answers 202 (docs/gateway.md)."""

        def register(fn: F) -> F:
            self._add(
                build_handler(
                    fn,
                    topic=topic,
                    group=group or self.name,
                    responder=False,
                    mode=mode,
                    concurrency=concurrency,
                    lease=lease,
                    max_deliveries=max_deliveries,
                    idempotent=idempotent,
                    timeout=timeout,
                    backoff=backoff or self.backoff,
                    start=start,
                    key_ordered=key_ordered,
                    name=name,
                    version=version,
                    http=http,
                    prefetch_bytes=prefetch_bytes,
                )
            )
            return fn

        return register

    def reply(
        self,
        topic: str,
        *,
        group: str | None = None,
        concurrency: int = 1,
        lease: float = 30.0,
        timeout: float | None = 60.0,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        name: str | None = None,
        version: str | None = None,
        http: str | None = None,
    ) -> Callable[[F], F]:
        """Register a request handler: its return value is the reply; an exception becomes a
        RemoteError at the requester. ``version`` (default: the service's) is the API version:
        requests asking for its major version reach only handlers of that major.
        ``http="POST /v1/quotes"``: ``tidings gateway`` serves the handler on that route, the
        reply is the response body (docs/gateway.md)."""
        if version is not None:
            major_of(version)  # validates

        def register(fn: F) -> F:
            self._add(
                build_handler(
                    fn,
                    topic=topic,
                    group=group or self.name,
                    responder=True,
                    mode="shared",
                    concurrency=concurrency,
                    lease=lease,
                    max_deliveries=max_deliveries,
                    idempotent=False,
                    timeout=timeout,
                    backoff=self.backoff,
                    start="latest",
                    key_ordered=False,
                    name=name,
                    version=version,
                    http=http,
                )
            )
            return fn

        return register

    def health_check(
        self, fn: Callable[[], Awaitable[Any]] | None = None, *, timeout: float = 2.0
    ) -> Any:
        """Register an async readiness check (``@svc.health_check``): the instance is ready
        only while every check returns truthy (or None) within ``timeout`` seconds."""

        def add(check: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
            name = getattr(check, "__name__", "check")
            self.health_checks.append(HealthCheck(name, check, timeout))
            return check

        return add(fn) if fn is not None else add

    def _add(self, handler: Handler) -> None:
        if self._started:
            raise BadRequest("register handlers before the service starts")
        for other in self.handlers:
            if (other.topic, other.group) == (handler.topic, handler.group):
                raise BadRequest(
                    f"{handler.name} and {other.name} both consume {handler.topic!r} in group "
                    f"{handler.group!r}: give one of them another group"
                )
        self.handlers.append(handler)

    def emits(
        self, topic: str, payload_type: Any, *, kind: Kind = "event", description: str | None = None
    ) -> None:
        """Declare that the service publishes ``payload_type`` on ``topic`` (documentation
        and the AsyncAPI export)."""
        self.emitted.append(Emits(topic, PayloadType(payload_type), kind, description))

    def topic(self, name: str, **options: Any) -> None:
        """Declare a topic's settings (partitions, retention, ...); created at start."""
        self.topics[name] = TopicSpec(name=name, **options).validate()

    def observe(self, callback: Callable[[Handled], None]) -> None:
        """Call ``callback(handled)`` after every handling is settled (the test kit waits on
        this; ``handled.outcome`` is ok, duplicate, invalid, reject, retry, cancelled or error)."""
        self._observers.append(callback)

    def notify(self, handled: Handled) -> None:
        for callback in self._observers:
            try:
                callback(handled)
            except Exception:
                log.exception("a service observer failed")

    def background(self, fn: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """Run ``await fn()`` as a task while the service runs (started after the handlers,
        cancelled first at stop); what builds on a service (sagas' timers) hooks in here."""
        self._background.append(fn)
        return fn

    def use(self, middleware: Middleware) -> None:
        """Append a middleware (innermost so far)."""
        self.middleware.append(middleware)

    # lifecycle
    async def _connect(self) -> AsyncClient:
        if self.client is None:
            # Many first publishes may arrive at once: they share one connection attempt.
            if self._connecting is None:
                self._connecting = asyncio.ensure_future(self._open_client())
            try:
                await asyncio.shield(self._connecting)
            finally:
                if self._connecting is not None and self._connecting.done():
                    self._connecting = None
        assert self.client is not None
        return self.client

    async def _open_client(self) -> None:
        client = AsyncClient(self.url, **self.client_options)
        await client.connect()
        self.client = client

    def _idempotency_store(self) -> IdempotencyStore:
        if self.outbox is not None:
            return self._outbox_idempotency_store()
        if isinstance(self.idempotency, IdempotencyStore):
            return self.idempotency
        url = self.idempotency
        if url is None:
            transport = self.client.transport if self.client is not None else None
            if getattr(transport, "scheme", None) == "memory":
                # memory:// forgets every message when the process ends: processed ids kept in
                # a file would make the next run skip messages that reuse an id
                url = IN_MEMORY_URL
                log.info("service %s: processed ids kept in memory (memory://)", self.name)
            else:
                url = default_url(self.name)
                log.info(
                    "service %s: processed ids in %s (set idempotency= to choose the database)",
                    self.name,
                    url.removeprefix("sqlite:///"),
                )
        return IdempotencyStore(url, window=self.idempotency_window)

    def _outbox_idempotency_store(self) -> IdempotencyStore:
        """With an outbox, processed ids live on the outbox's database (by default in the
        same engine), so the record commits in the handling's transaction."""
        tx = self._outbox_transactions()
        if self.idempotency is None:
            store = IdempotencyStore(engine=tx.engine, window=self.idempotency_window)
        elif isinstance(self.idempotency, IdempotencyStore):
            store = self.idempotency
        else:
            store = IdempotencyStore(self.idempotency, window=self.idempotency_window)
        if not same_database(store.engine, tx.engine):
            if store is not self.idempotency:
                store.close()
            raise BadRequest(
                f"service {self.name}: the idempotency store ({store.engine.url!r}) is not on "
                f"the outbox's database ({tx.engine.url!r}); the processed-id record must "
                "commit in the handler's transaction: leave idempotency= out (the outbox's "
                "database is used) or point it at the same database"
            )
        if tx.turns is not None:  # SQLite: one turn for guarded and plain handlings alike
            store._turns = tx.turns
        elif store.engine is tx.engine:  # one pool: one count of open transactions
            store._slots = tx.slots
        return store

    def _outbox_transactions(self) -> Transactions:
        if self.outbox is None:
            raise BadRequest(
                f"service {self.name} has no outbox: tidings.Service(..., outbox=Outbox(engine))"
            )
        if self._transactions is None:
            self._transactions = Transactions(self.outbox)
        return self._transactions

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A transaction on the outbox's database, outside handlers: ``tx.connection`` for
        your rows, ``await tx.publish(...)`` for messages the relay sends once it commits.
        Commits on a clean exit, rolls back on an exception."""
        outbox = self.outbox
        async with self._outbox_transactions().begin() as conn:
            assert outbox is not None
            yield Transaction(self, outbox, conn)

    async def start(self) -> None:
        """Connect, create topics and groups, and start every handler."""
        if self._started:
            return
        self._started = True
        try:
            client = await self._connect()
            for spec in self.topics.values():
                await client.transport.create_topic(spec, exist_ok=True)
            for handler in self.handlers:
                if handler.topic not in self.topics:
                    await client.create_topic(handler.topic, exist_ok=True)
            if any(hd.idempotent for hd in self.handlers):
                self._store = self._idempotency_store()
                self._cleanup = asyncio.create_task(self._store.run_cleanup())
            agent = self.registration = RegistrationAgent(self) if self.register else None
            if agent is not None:
                self.middleware.insert(0, agent.middleware)
                await agent.start_probes(self.health_host, self.health_port)
            for handler in self._consumed():
                if handler.topic not in self.topics:
                    await client.create_topic(handler.topic, exist_ok=True)
                consumer = Consumer(self, handler, self._handle_chain(handler))
                await consumer.start()
                self._consumers.append(consumer)
            if agent is not None:
                agent.readiness.attached = True
                await agent.start(client)
            self._background_tasks = [
                asyncio.ensure_future(fn()) for fn in self._background
            ]  # ensure_future: fn may return any awaitable
        except BaseException:
            await self.stop(grace=0)
            raise
        log.info(started_line(self.name, client.url, self.handlers))

    async def stop(self, grace: float | None = None) -> None:
        """Stop fetching, give in-flight handlers ``grace`` seconds (the service's grace
        period by default) to finish, nack the rest, and close the connection."""
        grace = self.grace_period if grace is None else grace
        deadline = asyncio.get_running_loop().time() + grace
        announce = self._started and self.client is not None
        if announce:
            log.info("service %s stopping (in-flight handlers get %gs)", self.name, grace)
        agent = self.registration
        if agent is not None:  # leave the registry first: callers stop choosing this instance
            await agent.deregister()
        tasks, self._background_tasks = self._background_tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        consumers, self._consumers = self._consumers, []
        await asyncio.gather(*(c.stop(deadline) for c in consumers))
        if self._cleanup is not None:
            self._cleanup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._cleanup
            self._cleanup = None
        if self._store is not None:
            if self._store is not self.idempotency:
                self._store.close()
            self._store = None
        if self._transactions is not None:
            self._transactions.close()
            self._transactions = None
        if self.client is not None:
            client, self.client = self.client, None
            await client.close()
        if agent is not None:
            await agent.stop()
            with contextlib.suppress(ValueError):
                self.middleware.remove(agent.middleware)
            self.registration = None
        self._started = False
        if announce:
            log.info("service %s stopped", self.name)

    def _consumed(self) -> list[Handler]:
        """Every handler, each responder once more on its versioned topic, and, in an instance
        group, each HTTP route on its group topic (the versioned one for a responder)."""
        out = list(self.handlers)
        for hd in self.handlers:
            topic = hd.topic
            if hd.responder:
                topic = versioned_topic(hd.topic, hd.version or self.version)
                out.append(dataclasses.replace(hd, topic=topic))
            if self.instance_group and hd.http is not None:
                out.append(dataclasses.replace(hd, topic=group_topic(topic, self.instance_group)))
        return out

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Service]:
        """Run the service in the background for the block (tests, embedding)."""
        await self.start()
        try:
            yield self
        finally:
            await self.stop()

    def request_stop(self) -> None:
        """Ask :meth:`serve` to shut down gracefully (what SIGTERM does)."""
        if self._stop_requested is not None:
            self._stop_requested.set()

    async def serve(self) -> None:
        """Start, run until :meth:`request_stop` (or SIGTERM/SIGINT via :meth:`run`), stop."""
        self._stop_requested = asyncio.Event()
        async with self.running():
            await self._stop_requested.wait()

    def run(self, log_level: str | None = None) -> None:
        """Run until SIGTERM or SIGINT, then shut down gracefully. Blocks.

        Logs its lifecycle to stderr at ``log_level`` (INFO by default) unless the application
        configured logging itself (the root logger has handlers) and gives no level."""
        if log_level is not None or not logging.getLogger().handlers:
            setup_logging(log_level or "INFO")
        run_until_signalled(self)

    # publishing
    def _handle_chain(self, handler: Handler) -> HandlePlan:
        store = self._store
        consumer = f"{handler.topic}/{handler.group}"
        outbox = self.outbox

        def enter(ctx: Any, connection: Any) -> None:
            ctx.transaction = connection
            if outbox is not None:
                ctx.outbox_transaction = Transaction(self, outbox, connection)

        async def guarded(ctx: Any) -> Any:
            assert store is not None
            async with store.guard(consumer, ctx.message_id) as guard:
                if guard.duplicate:
                    ctx.duplicate = True
                    return None
                enter(ctx, guard.connection)
                return await handler.call(ctx.payload, ctx)

        async def transactional(ctx: Any) -> Any:
            async with self._outbox_transactions().begin() as connection:
                enter(ctx, connection)
                return await handler.call(ctx.payload, ctx)

        decode, call = handler.payload.decoder(self.codec), handler.caller()  # chosen once

        def endpoint(ctx: Any) -> Awaitable[Any]:
            # not a coroutine of its own: the handler's (or the guard's) is awaited directly
            ctx.payload = payload = decode(ctx.message)
            if handler.idempotent and store is not None:
                return guarded(ctx)
            if outbox is not None:
                return transactional(ctx)
            return call(payload, ctx)

        return handle_chain(self.middleware, endpoint)

    def __repr__(self) -> str:
        return f"Service({self.name!r}, handlers={[hd.name for hd in self.handlers]})"
