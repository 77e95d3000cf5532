"""Making ordinary service handlers saga participants, without boilerplate.

    participant = tidings.Participant(svc)          # svc = tidings.Service(..., outbox=...)

    @participant.command("payment.refund")
    async def refund(cmd: RefundPayment, ctx: tidings.Context) -> PaymentRefunded:
        ctx.transaction.execute(refunds.insert().values(order=cmd.order))
        if cmd.amount > 1000:
            raise tidings.StepFailed("refunds over 1000 need a human")
        return PaymentRefunded(refund_id=...)

    @participant.compensation("payment.cancel-refund")
    async def cancel(cmd: RefundPayment, ctx: tidings.Context) -> None: ...

The return value is the success reply; ``StepFailed`` rolls the handler's writes back (a
savepoint) and replies with the failure; any other exception is an ordinary handler failure
(retried with backoff). The reply is written to the outbox in the handling's transaction.

Each (saga, step) takes effect at most once, whatever the orchestrator re-sends: a table
``tidings_saga_participant(participant, command, saga_id, step)`` in the same transaction
keeps its status and reply. A repeated command (a retry after a timeout, a redelivery) gets
the stored reply again, unless the step failed (it left no effect, so a retry runs it again).
A compensation runs the compensation handler only for a command that took effect; one that
overtakes its command (the orchestrator timed out first) leaves a ``cancelled`` mark, so the
late command is answered with a failure and does nothing.

A step's command and its compensation are handled by two subscriptions, so one process can
have both at once (a compensation overtaking its command). Both write the step's row, and the
second write would wait for the first transaction on PostgreSQL's row lock while blocking the
event loop that the first needs to commit: a stall of the whole process until the lock
timeout (5 s) failed it. So in one process a step's handlings take turns (an asyncio lock
per step, held until the handling's transaction commits or rolls back); between processes
the row lock serializes them, as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
import sqlalchemy as sa
from pydantic_core import to_jsonable_python
from sqlalchemy.dialects import postgresql, sqlite

from .. import headers as h
from ..errors import BadRequest, InvalidPayload, StepFailed
from ..model import Message
from ..service import Context, Reject, Service
from ..service.handlers import HandlerFn, build_handler
from . import locking
from . import protocol as p
from .orchestrator import create_outbox_table

log = logging.getLogger("tidings.sagas")

TABLE = "tidings_saga_participant"
KEY = ("participant", "command", "saga_id", "step")

F = TypeVar("F", bound=HandlerFn)


def participant_table(name: str, metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("participant", sa.String(200), primary_key=True),
        sa.Column("command", sa.String(200), primary_key=True),
        sa.Column("saga_id", sa.String(200), primary_key=True),
        sa.Column("step", sa.String(200), primary_key=True),
        # running (never committed) | done | failed | cancelled | compensated
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reply", sa.LargeBinary, nullable=False),
    )


class Participant:
    """Saga command and compensation handlers on ``service`` (which needs ``outbox=``)."""

    def __init__(
        self,
        service: Service,
        *,
        name: str | None = None,
        table: str = TABLE,
        create_tables: bool = True,
    ) -> None:
        if service.outbox is None:
            raise BadRequest(
                f"service {service.name}: a saga participant writes its reply with its effects "
                "in one transaction; give the service tidings.Service(..., outbox=Outbox(engine))"
            )
        self.service = service
        self.name = name or service.name
        self.metadata = sa.MetaData()
        self.table = participant_table(table, self.metadata)
        self._statements()
        # per step (see above): its lock and how many handlings hold it or wait for it
        self._turns: dict[tuple[str, str, str], tuple[asyncio.Lock, list[int]]] = {}
        if create_tables:
            create_outbox_table(service.outbox)
            self.metadata.create_all(service.outbox.sync_engine)

    def command(self, topic: str, **options: Any) -> Callable[[F], F]:
        """Register ``fn(command, ctx)`` for saga commands on ``topic``: its return value is the
        success reply; raising ``tidings.StepFailed`` replies with the failure. ``options`` go
        to ``svc.on`` (concurrency, lease, timeout, max_deliveries, group, ...)."""

        def register(fn: F) -> F:
            target = build_handler(fn, **_inspect_options(topic, self.service))

            async def handle(message: Message, ctx: Context) -> None:
                await self._command(target, topic, message, ctx)

            # one saga at a time where the engine can; elsewhere the step records (claimed
            # under a row lock) keep concurrent handlings of a saga apart
            on = self.service.on(topic, key_ordered="if-supported", name=target.name, **options)
            on(handle)
            return fn

        return register

    def compensation(self, topic: str, **options: Any) -> Callable[[F], F]:
        """Register ``fn(command, ctx)`` that undoes a step (the body is the step's command
        unless the saga builds another). It runs only if the step's command took effect;
        raising ``tidings.StepFailed`` reports that the compensation failed."""

        def register(fn: F) -> F:
            target = build_handler(fn, **_inspect_options(topic, self.service))

            async def handle(message: Message, ctx: Context) -> None:
                await self._compensation(target, message, ctx)

            # one saga at a time where the engine can; elsewhere the step records (claimed
            # under a row lock) keep concurrent handlings of a saga apart
            on = self.service.on(topic, key_ordered="if-supported", name=target.name, **options)
            on(handle)
            return fn

        return register

    # the records: statements built once, values as parameters
    def _statements(self) -> None:
        t = self.table
        key = sa.and_(*(t.c[k] == sa.bindparam(f"k_{k}") for k in KEY))
        self._select = sa.select(t.c.status, t.c.reply).where(key)
        self._select_locked = (
            sa.select(t.c.status, t.c.reply)
            .select_from(t.join(locking.lock_wait(), sa.true()))
            .where(key)
            .with_for_update(of=t)
        )
        self._insert = t.insert()
        self._update = t.update().where(key)
        # insert unless the record exists, in one statement: PostgreSQL takes the row from
        # lock_wait (so a wait for a concurrent insert of the same step is bounded too)
        names = (*KEY, "status", "reply")
        row = sa.select(*(sa.bindparam(f"c_{n}", type_=t.c[n].type) for n in names))
        self._claim_pg = (
            postgresql.insert(t)
            .from_select(names, row.select_from(locking.lock_wait()))
            .on_conflict_do_nothing()
            .returning(t.c.status)
        )
        self._claim_sqlite = sqlite.insert(t).on_conflict_do_nothing().returning(t.c.status)

    def _key(self, command: str, saga_id: str, step: str) -> dict[str, str]:
        return {"k_participant": self.name, "k_command": command, "k_saga_id": saga_id,
                "k_step": step}  # fmt: skip

    def _claim(
        self, conn: Any, command: str, saga_id: str, step: str, status: str, reply: bytes
    ) -> Any:
        """Write the step's record with ``status`` unless it has one: None if written, else
        the record's (status, reply), locked on PostgreSQL until the transaction ends."""
        key = self._key(command, saga_id, step)
        dialect = conn.dialect.name
        if dialect == "postgresql":
            values = {"c_participant": self.name, "c_command": command, "c_saga_id": saga_id,
                      "c_step": step, "c_status": status, "c_reply": reply}  # fmt: skip
            if conn.execute(self._claim_pg, locking.params(**values)).first() is not None:
                return None
            # it exists (committed: a concurrent insert was waited for): lock it
            return conn.execute(self._select_locked, locking.params(**key)).first()
        values = {"participant": self.name, "command": command, "saga_id": saga_id,
                  "step": step, "status": status, "reply": reply}  # fmt: skip
        if dialect == "sqlite":  # one writer at a time: no row locks to take
            if conn.execute(self._claim_sqlite, values).first() is not None:
                return None
            return conn.execute(self._select, key).first()
        existing = conn.execute(self._select, key).first()
        if existing is None:
            conn.execute(self._insert, values)
        return existing

    def _set(self, conn: Any, command: str, saga_id: str, step: str, **values: Any) -> None:
        conn.execute(self._update, {**self._key(command, saga_id, step), **values})

    # handling
    async def _take_turn(self, ctx: Context, step: tuple[str, str, str]) -> None:
        """Wait for this process's other handling of ``step`` to end its transaction, then
        hold the step until this handling's transaction ends."""
        turn = self._turns.get(step)
        if turn is None:
            turn = self._turns[step] = (asyncio.Lock(), [0])
        lock, users = turn
        users[0] += 1
        try:
            await lock.acquire()
        except BaseException:
            self._leave(step, users)
            raise
        loop = asyncio.get_running_loop()
        ended = False

        def end(_conn: Any) -> None:  # commit or rollback: in the thread that runs it
            nonlocal ended
            if not ended:
                ended = True
                loop.call_soon_threadsafe(self._end_turn, step, lock, users)

        sa.event.listen(ctx.transaction, "commit", end)
        sa.event.listen(ctx.transaction, "rollback", end)

    def _end_turn(self, step: tuple[str, str, str], lock: asyncio.Lock, users: list[int]) -> None:
        lock.release()
        self._leave(step, users)

    def _leave(self, step: tuple[str, str, str], users: list[int]) -> None:
        users[0] -= 1
        if users[0] == 0:
            del self._turns[step]

    def _saga_headers(self, message: Message) -> tuple[str, str, str]:
        headers = message.headers
        saga_id, step = headers.get(p.SAGA_ID), headers.get(p.STEP)
        reply_to = headers.get(h.REPLY_TO)
        if not saga_id or not step or not reply_to:
            log.warning("saga participant %s: message %s on %s is not a saga command (no %s, %s "
                        "or %s header): dead-lettered", self.name, message.id, message.topic,
                        p.SAGA_ID, p.STEP, h.REPLY_TO)  # fmt: skip
            raise Reject(f"not a saga command: it needs {p.SAGA_ID}, {p.STEP} and {h.REPLY_TO}")
        return saga_id, step, reply_to

    async def _reply(self, ctx: Context, message: Message, reply_to: str, body: bytes) -> None:
        tx = ctx.outbox_transaction
        assert tx is not None
        await tx.publish(reply_to, body, key=message.headers[p.SAGA_ID],
                         headers=p.reply_headers(message.headers), kind="reply")  # fmt: skip

    async def _run(self, target: Any, message: Message, ctx: Context) -> tuple[bool, bytes]:
        """Run the user's handler in a savepoint: (took effect, reply body)."""
        try:
            payload = target.payload.decode(message, self.service.codec)
        except InvalidPayload as exc:
            return False, p.encode_reply(False, error=str(exc))
        conn = ctx.transaction
        assert conn is not None
        try:
            with conn.begin_nested():
                result = await target.call(payload, ctx)
        except StepFailed as exc:
            return False, p.encode_reply(False, error=exc.message)
        return True, p.encode_reply(True, to_jsonable_python(result))

    async def _command(self, target: Any, topic: str, message: Message, ctx: Context) -> None:
        saga_id, step, reply_to = self._saga_headers(message)
        conn = ctx.transaction
        await self._take_turn(ctx, (topic, saga_id, step))
        # claim the step first: a concurrent handling waits here (its row lock), then finds it
        done = self._claim(conn, topic, saga_id, step, "running", b"")
        if done is not None and done.status != "failed":  # done or cancelled: the same answer
            log.info("saga %s: %s for step %s again (%s): the stored reply is re-sent", saga_id,
                     topic, step, done.status)  # fmt: skip
            await self._reply(ctx, message, reply_to, done.reply)
            return
        # (a failed step left no effect: the orchestrator's retry runs it again)
        ok, reply = await self._run(target, message, ctx)
        self._set(conn, topic, saga_id, step, status="done" if ok else "failed", reply=reply)
        await self._reply(ctx, message, reply_to, reply)

    async def _compensation(self, target: Any, message: Message, ctx: Context) -> None:
        saga_id, step, reply_to = self._saga_headers(message)
        command = message.headers.get(p.COMMAND)
        if not command:
            raise Reject(f"not a saga compensation: it needs {p.COMMAND}")
        conn = ctx.transaction
        await self._take_turn(ctx, (command, saga_id, step))
        ok_reply = p.encode_reply(True)
        cancelled = p.encode_reply(False, error="compensated before it ran")
        done = self._claim(conn, command, saga_id, step, "cancelled", cancelled)
        if done is None:  # the command has not run (yet): it never will
            log.info("saga %s: %s compensated before it ran: marked cancelled", saga_id, command)
            await self._reply(ctx, message, reply_to, ok_reply)
            return
        if done.status != "done":  # failed, cancelled or compensated: nothing (more) to undo
            await self._reply(ctx, message, reply_to, ok_reply)
            return
        ok, reply = await self._run(target, message, ctx)
        if ok:
            self._set(conn, command, saga_id, step, status="compensated")
            reply = ok_reply
        await self._reply(ctx, message, reply_to, reply)


def _inspect_options(topic: str, service: Service) -> dict[str, Any]:
    """build_handler's options, only to read the user function's payload and context."""
    return dict(
        topic=topic, group=service.name, responder=False, mode="shared", concurrency=1,
        lease=30.0, max_deliveries=1, idempotent=False, timeout=None, backoff=service.backoff,
        start="earliest", key_ordered=False, name=None,
    )  # fmt: skip


def decode_reply(body: bytes) -> Any:
    """A stored reply as data (for operators and tests)."""
    return msgspec.json.decode(body)
