"""The orchestrator: runs saga instances inside a ``tidings.Service`` that has an outbox.

    svc = tidings.Service("refunds", url, outbox=Outbox(engine))
    orchestrator = tidings.Orchestrator(svc, [refund_saga])
    saga_id = await orchestrator.start(refund_saga, RefundState(order="o-1", amount=5))

Per saga definition it consumes ``saga.<name>.replies``, a partitioned topic keyed by saga
id, in an *ordered* group: each instance's replies and timeouts are handled one at a time, by
the one orchestrator instance that holds its partition (several run side by side; a dead
one's partitions go to the others). Each handling is one transaction on the outbox's
database: the saga row (locked and version-checked), its history, the outbox rows of the
commands the transition sends and the reply's processed-id record commit together or not at
all, so a crash anywhere resumes the instance where it was and sends nothing twice.

Bad input is handled the same way every time, and logged with the saga id: a reply for an
unknown saga, a message with no saga id or correlation id, and a malformed reply the instance
is not waiting for are dead-lettered (``Reject``) to ``saga.<name>.replies.<group>.dlq``; a
malformed reply to the awaited command (not JSON, a result that does not validate) or a reply
of the instance for a step it does not have fails that command at once (retry policy, then
compensation; the reason in the history); a duplicate reply, or one for a step no longer
awaited, is acknowledged and ignored; a participant that never answers is a timeout: each
orchestrator looks for instances past their deadline every ``tick`` seconds and publishes a
timeout message for them (its msg_id is derived from the awaited token, so the copies several
orchestrators send are one message), which the owner handles like a failure reply.

Operator actions (:meth:`Orchestrator.retry`, :meth:`~Orchestrator.compensate`,
:meth:`~Orchestrator.abort`, and ``tidings sagas retry|compensate|abort``, which writes the
same request to the outbox table of the orchestrator's database) are messages on the reply
topic too: the owner handles them in order with the replies, as one transition (with the
outbox rows of the commands it sends), recorded in the history with who and why; one the
instance no longer allows when it arrives is recorded as ``action-refused``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

from .. import headers as h
from ..errors import BadRequest, SagaConflict, SagaNotFound, Timeout
from ..model import Message
from ..names import validate_name
from ..outbox import Outbox
from ..service import Context, Reject, Service
from ..service.transactions import Transaction
from . import protocol as p
from .definition import Saga
from .machine import Machine, Send
from .store import ACTIVE, SagaRecord, SagaStore

log = logging.getLogger("tidings.sagas")

def create_outbox_table(outbox: Any) -> None:
    """Create the outbox table if missing (a sync ``tidings.outbox.Outbox``; with an async
    engine, create it yourself: ``await outbox.create_table()``)."""
    if isinstance(outbox, Outbox) and not outbox.is_async:
        outbox.create_table()


class Orchestrator:
    """Runs the given sagas in ``service`` (which needs ``outbox=``)."""

    def __init__(
        self,
        service: Service,
        sagas: Sequence[Saga],
        *,
        partitions: int = 8,
        concurrency: int = 16,
        lease: float = 30.0,
        tick: float = 1.0,
        table_prefix: str = "tidings",
        create_tables: bool = True,
    ) -> None:
        """``create_tables``: create the saga tables (and the outbox's) if missing; leave it
        False when migrations create them (:func:`tidings.sagas.store.tables`)."""
        if service.outbox is None:
            raise BadRequest(
                f"service {service.name}: an orchestrator keeps saga state with the outbox rows "
                "of its commands; give the service one: tidings.Service(..., outbox=Outbox(engine))"
            )
        if not sagas:
            raise BadRequest("an orchestrator needs at least one saga")
        self.service = service
        self.store = SagaStore(table_prefix)
        self.machines: dict[str, Machine] = {}
        self.tick = tick
        self._fired: dict[str, float] = {}
        for saga in sagas:
            if saga.name in self.machines:
                raise BadRequest(f"saga {saga.name} is given twice")
            self.machines[saga.name] = Machine(saga)
            topic = p.reply_topic(saga.name)
            service.topic(topic, partitions=partitions)
            service.on(
                topic, group=f"{saga.name}.orchestrator", mode="ordered", idempotent=True,
                concurrency=concurrency, lease=lease, name=f"saga-{saga.name}",
            )(self._handler(saga))  # fmt: skip
        service.background(self._timers)
        if create_tables:
            create_outbox_table(service.outbox)
            self.store.create_tables(service.outbox.sync_engine)

    # starting instances
    async def start(
        self,
        saga: Saga | str,
        state: Any,
        *,
        id: str | None = None,
        tx: Transaction | None = None,
    ) -> str:
        """Start an instance of ``saga`` with ``state``; returns its id (a new UUID unless
        ``id`` is given; an id in use raises AlreadyExists). With ``tx`` (from
        ``svc.transaction()`` or a handler's ``ctx.outbox_transaction``) the instance and its
        first command commit with the caller's own rows; otherwise in a transaction of its own."""
        machine = self._machine(saga)
        saga_id = validate_name("saga id", id) if id is not None else uuid.uuid4().hex
        if tx is not None:
            await self._begin(machine, saga_id, state, tx)
            return saga_id
        async with self.service.transaction() as own:
            await self._begin(machine, saga_id, state, own)
        return saga_id

    async def _begin(self, machine: Machine, saga_id: str, state: Any, tx: Transaction) -> None:
        record, sends = machine.begin(saga_id, state)
        self.store.insert(tx.connection, record)
        await self._send(tx, sends)
        log.info("saga %s %s started: %s", machine.saga.name, saga_id, _commands(sends))

    def _machine(self, saga: Saga | str) -> Machine:
        name = saga if isinstance(saga, str) else saga.name
        machine = self.machines.get(name)
        if machine is None:
            raise BadRequest(f"saga {name} is not run by this orchestrator: add it to its sagas")
        return machine

    # reading instances
    def _engine(self) -> Any:
        return self.service._outbox_transactions().engine  # SQLite: one safe across threads

    async def get(self, saga_id: str) -> SagaRecord | None:
        """The stored instance (None if there is none)."""

        def read() -> SagaRecord | None:
            with self._engine().connect() as conn:
                return self.store.load(conn, saga_id, lock=False)

        return await asyncio.to_thread(read)

    async def wait(self, saga_id: str, timeout: float = 60.0) -> SagaRecord:
        """Wait until the instance has ended (completed, compensated or failed)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            record = await self.get(saga_id)
            if record is not None and record.status not in ACTIVE:
                return record
            if loop.time() > deadline:
                status = "missing" if record is None else record.status
                raise Timeout(f"saga {saga_id} did not end within {timeout}s (it is {status})")
            await asyncio.sleep(0.05)

    # operator actions
    async def retry(self, saga_id: str, *, reason: str | None = None, by: str | None = None) -> str:
        """Send the current step's (or compensation's) command again, as a new attempt."""
        return await self.act(saga_id, p.RETRY, reason=reason, by=by)

    async def compensate(
        self, saga_id: str, *, reason: str | None = None, by: str | None = None
    ) -> str:
        """Stop going forward and compensate the completed steps, last first (refused at or
        after the pivot)."""
        return await self.act(saga_id, "compensate", reason=reason, by=by)

    async def abort(self, saga_id: str, *, reason: str | None = None, by: str | None = None) -> str:
        """Mark the instance aborted without compensations (after fixing things by hand)."""
        return await self.act(saga_id, p.ABORT, reason=reason, by=by)

    async def act(
        self, saga_id: str, action: str, *, reason: str | None = None, by: str | None = None
    ) -> str:
        """Request an operator action; its request id once the request is committed. Refused
        (SagaConflict) when the instance as it is now does not allow it; the owner checks
        again when it handles the request (``action-refused`` in the history)."""
        if action not in p.ACTIONS:
            raise BadRequest(f"action must be one of {', '.join(p.ACTIONS)}, got {action!r}")
        record = await self.get(saga_id)
        if record is None:
            raise SagaNotFound(f"no saga {saga_id!r} in this database: see `tidings sagas list`")
        machine = self._machine(record.name)
        request = p.Action(saga_id, action, f"op-{uuid.uuid4().hex}", by or p.whoami(), reason)
        machine.act(copy.deepcopy(record), request)  # raises SagaConflict if refused
        body, headers = p.action_message(request)
        async with self.service.transaction() as tx:
            await tx.send(p.reply_topic(record.name), body, key=saga_id, headers=headers,
                          msg_id=request.request)  # fmt: skip
        log.info("saga %s %s: %s requested by %s (%s)", record.name, saga_id, action,
                 request.by, request.request)  # fmt: skip
        return request.request

    async def _act(self, machine: Machine, action: p.Action, ctx: Context) -> None:
        name = machine.saga.name
        conn, tx = ctx.transaction, ctx.outbox_transaction
        assert conn is not None and tx is not None
        record = self.store.load(conn, action.saga_id)  # locked, waiting briefly (.locking)
        if record is None or record.name != name:
            log.warning("saga %s %s: %s for an unknown saga dead-lettered", name,
                        action.saga_id, action.action)  # fmt: skip
            raise Reject(f"no saga {action.saga_id} of {name}")
        try:
            sends = machine.act(record, action)
        except SagaConflict as exc:
            record.log(None, "action-refused", f"{action.action} ({action.request}): {exc}")
            self.store.save(conn, record)
            log.warning("saga %s %s: %s refused: %s", name, action.saga_id, action.action, exc)
            return
        await self._send(tx, sends)
        self.store.save(conn, record)
        log.info("saga %s %s: %s by %s -> %s%s", name, action.saga_id, action.action, action.by,
                 record.status, f", sent {_commands(sends)}" if sends else "")  # fmt: skip

    # handling replies and timeouts
    def _handler(self, saga: Saga) -> Any:
        machine = self.machines[saga.name]

        async def handle(message: Message, ctx: Context) -> None:
            await self._handle(machine, message, ctx)

        handle.__name__ = f"saga_{saga.name.replace('-', '_').replace('.', '_')}"
        return handle

    async def _handle(self, machine: Machine, message: Message, ctx: Context) -> None:
        name = machine.saga.name
        saga_id = message.headers.get(p.SAGA_ID, "?")
        try:
            action = p.parse_action(message.headers, message.body)
            if action is not None:
                return await self._act(machine, action, ctx)
            reply = p.parse_reply(message.headers, message.body)
        except p.MalformedReply as exc:
            log.warning("saga %s %s: malformed message %s dead-lettered: %s", name, saga_id,
                        message.id, exc)  # fmt: skip
            raise Reject(f"malformed saga reply: {exc}") from None
        conn = ctx.transaction
        tx = ctx.outbox_transaction
        assert conn is not None and tx is not None
        record = self.store.load(conn, reply.saga_id)  # locked, waiting briefly (.locking)
        if record is None or record.name != name:
            log.warning("saga %s %s: reply %s for an unknown saga dead-lettered", name,
                        reply.saga_id, message.id)  # fmt: skip
            raise Reject(f"no saga {reply.saga_id} of {name}")
        what = "timeout" if reply.timeout else ("reply ok" if reply.ok else "failure reply")
        if reply.malformed is not None:
            what = "malformed reply"
        sends = machine.on_reply(record, reply)
        if sends is None and reply.malformed is not None:
            log.warning("saga %s %s: malformed reply %s for %s dead-lettered (the saga is %s, "
                        "waiting for %s): %s", name, reply.saga_id, message.id, reply.token,
                        record.status, record.token, reply.malformed)  # fmt: skip
            raise Reject(f"malformed saga reply: {reply.malformed}")
        bad = [d for _, e, d in record.events if (d or "").startswith("malformed reply")]
        if bad:  # events not saved yet: this transition's
            what = "malformed reply"
            log.warning("saga %s %s: reply %s fails the awaited command at once: %s", name,
                        reply.saga_id, message.id, bad[0])  # fmt: skip
        if sends is None:
            log.info("saga %s %s: %s for %s ignored (duplicate or stale; the saga is %s, "
                     "waiting for %s)", name, reply.saga_id, what, reply.token, record.status,
                     record.token)  # fmt: skip
            return
        await self._send(tx, sends)
        self.store.save(conn, record)
        log.info("saga %s %s: %s for %s -> %s%s", name, reply.saga_id, what, reply.token,
                 record.status, f", sent {_commands(sends)}" if sends else "")  # fmt: skip

    async def _send(self, tx: Transaction, sends: list[Send]) -> None:
        for s in sends:
            await tx.send(s.topic, s.payload, key=s.key, headers=s.headers, msg_id=s.msg_id,
                          delay=s.delay)  # fmt: skip

    # timeouts
    async def _timers(self) -> None:
        while True:
            try:
                await self.fire_timeouts()
            except Exception as exc:  # the database or broker is away: try again next tick
                log.warning("saga timers: %s", exc)
            await asyncio.sleep(self.tick)

    async def fire_timeouts(self, now: float | None = None) -> int:
        """Publish a timeout for every active instance past its deadline; how many."""
        now = time.time() if now is None else now

        def due() -> list[tuple[str, str, str]]:
            with self._engine().connect() as conn:
                return self.store.due(conn, now)

        fired = 0
        for saga_id, name, token in await asyncio.to_thread(due):
            last = self._fired.get(token)
            if name not in self.machines or (last is not None and now - last < 5 * self.tick):
                continue
            self._fired[token] = now
            headers = {p.SAGA_ID: saga_id, h.CORRELATION_ID: token, p.TIMEOUT: "1"}
            await self.service.publish(p.reply_topic(name), b"", key=saga_id, headers=headers,
                                       msg_id=p.timeout_id(token))  # fmt: skip
            fired += 1
        if len(self._fired) > 10_000:
            cutoff = now - 10 * self.tick
            self._fired = {t: at for t, at in self._fired.items() if at >= cutoff}
        return fired


def _commands(sends: list[Send]) -> str:
    return ", ".join(f"{s.topic} ({s.msg_id})" for s in sends) or "nothing"
