"""The demo's saga act: a refund as a business transaction across two services.

The ``refunds`` service runs a :class:`tidings.Orchestrator` for the saga ``refund-order``
(three steps: ``refund-payment``, ``restock``, ``notify``); the ``warehouse`` service is the
participant of all three (a :class:`tidings.Participant`). Each service keeps its rows in its
own SQLite database with an outbox and a relay, so each saga transition commits with the
commands it sends. Two refunds are run: one completes; the other's SKU is discontinued, so
``restock`` fails (``StepFailed``) and the completed ``refund-payment`` is compensated
(``payment.cancel-refund``). The participant's ``effects`` table shows what happened, once.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from ..errors import StepFailed
from ..outbox import Outbox, Relay
from ..sagas import Orchestrator, Participant, Saga
from ..service import Context, Service

DISCONTINUED = "sku-99"


class Refund(BaseModel):
    order_id: str
    sku: str
    amount: float
    refund_id: str | None = None


class RefundPaid(BaseModel):
    refund_id: str


def make_saga(name: str, prefix: str) -> Saga:
    saga = Saga(name, state=Refund, timeout=20)

    @saga.step(command=f"{prefix}payment.refund", compensate=f"{prefix}payment.cancel-refund",
               name="refund-payment")  # fmt: skip
    def refund_payment(state: Refund) -> Refund:
        return state

    @refund_payment.on_reply
    def paid(state: Refund, reply: RefundPaid) -> None:
        state.refund_id = reply.refund_id

    @saga.step(command=f"{prefix}inventory.restock", compensate=f"{prefix}inventory.unstock")
    def restock(state: Refund) -> Refund:
        return state

    @saga.step(command=f"{prefix}notification.refunded")
    def notify(state: Refund) -> Refund:
        return state

    return saga


def _sqlite(path: Path) -> sa.Engine:
    return sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})


class SagaAct:
    """Starts the two services (in this process), runs the two refunds, reports."""

    def __init__(self, url: str, tmp: Path, prefix: str, saga_name: str) -> None:
        self.saga = make_saga(saga_name, prefix)
        warehouse_db = _sqlite(tmp / "warehouse.db")
        outboxes = (Outbox(_sqlite(tmp / "refunds.db")), Outbox(warehouse_db))
        self.refunds = Service(f"{prefix}refunds", url, outbox=outboxes[0], register=False)
        self.orchestrator = Orchestrator(self.refunds, [self.saga], partitions=2, tick=0.5)
        self.warehouse_db = warehouse_db
        with self.warehouse_db.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS effects (order_id TEXT, what TEXT)")
        self.warehouse = Service(f"{prefix}warehouse", url, outbox=outboxes[1], register=False)
        participant = Participant(self.warehouse)

        def effect(ctx: Context, order: str, what: str) -> None:
            assert ctx.transaction is not None
            ctx.transaction.execute(sa.text("INSERT INTO effects VALUES (:o, :w)"),
                                    {"o": order, "w": what})  # fmt: skip

        @participant.command(f"{prefix}payment.refund")
        async def refund(cmd: Refund, ctx: Context) -> RefundPaid:
            effect(ctx, cmd.order_id, f"refunded {cmd.amount:.2f}")
            return RefundPaid(refund_id=f"rf-{cmd.order_id}")

        @participant.compensation(f"{prefix}payment.cancel-refund")
        async def cancel(cmd: Refund, ctx: Context) -> None:
            effect(ctx, cmd.order_id, "refund cancelled")

        @participant.command(f"{prefix}inventory.restock")
        async def restock(cmd: Refund, ctx: Context) -> None:
            if cmd.sku == DISCONTINUED:
                raise StepFailed(f"{cmd.sku} is discontinued: it cannot go back on the shelf")
            effect(ctx, cmd.order_id, f"restocked {cmd.sku}")

        @participant.compensation(f"{prefix}inventory.unstock")
        async def unstock(cmd: Refund, ctx: Context) -> None:
            effect(ctx, cmd.order_id, f"unstocked {cmd.sku}")

        @participant.command(f"{prefix}notification.refunded")
        async def notify(cmd: Refund, ctx: Context) -> None:
            effect(ctx, cmd.order_id, "customer told")

        self.relays = [Relay(outbox, url, max_interval=0.05) for outbox in outboxes]

    async def play(self, say: Any) -> dict[str, Any]:
        async with contextlib.AsyncExitStack() as stack:
            for part in (self.refunds, self.warehouse, *self.relays):
                await stack.enter_async_context(part.running())
            refunds = [Refund(order_id="o-000007", sku="sku-07", amount=8.5),
                       Refund(order_id="o-000099", sku=DISCONTINUED, amount=54.5)]  # fmt: skip
            ids = [await self.orchestrator.start(self.saga, r, id=f"refund-{r.order_id}")
                   for r in refunds]  # fmt: skip
            records = [await self.orchestrator.wait(i, timeout=60) for i in ids]
        with self.warehouse_db.connect() as conn:
            rows = conn.exec_driver_sql("SELECT order_id, what FROM effects ORDER BY rowid").all()
        effects: dict[str, list[str]] = {r.order_id: [] for r in refunds}
        for order, what in rows:
            effects[order].append(what)
        out = []
        for refund, record in zip(refunds, records, strict=True):
            steps = {s["name"]: s["status"] for s in record.steps}
            out.append({"id": record.id, "status": record.status, "steps": steps,
                        "failed_step": record.failed_step, "error": record.error,
                        "effects": effects[refund.order_id]})  # fmt: skip
            if record.status == "completed":
                say(f"saga {self.saga.name} {record.id}: completed "
                    f"({', '.join(steps)}): {'; '.join(effects[refund.order_id])}")  # fmt: skip
            else:
                undone = [n for n, s in steps.items() if s == "compensated"]
                why = (record.error or "").split(": ", 1)[-1]
                say(f"saga {self.saga.name} {record.id}: {record.failed_step} failed ({why}); "
                    f"{', '.join(undone) or 'nothing'} compensated -> {record.status}: "
                    f"{'; '.join(effects[refund.order_id])}")  # fmt: skip
        ok = (
            [r["status"] for r in out] == ["completed", "compensated"]
            and out[0]["effects"] == ["refunded 8.50", "restocked sku-07", "customer told"]
            and out[1]["effects"] == ["refunded 54.50", "refund cancelled"]
        )
        return {"saga": self.saga.name, "instances": out, "reconciled": ok}
