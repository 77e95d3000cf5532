"""The saga of the tests: an order is charged, its stock reserved and its shipping booked.

    orders (orchestrator, its own database)  --pay.charge / stock.reserve / ship.book-->
    shop   (participants, its own database)  <--pay.refund / stock.release / ship.cancel--

The state says where a participant fails (``fail``: StepFailed), where it never answers
(``hang``: its handler keeps raising) and how often a step fails before it succeeds
(``flaky``), and which step replies with a result that does not fit (``bad``). Each participant
writes its effects into ``effects(saga_id, step, kind)`` (kind ``do`` or ``undo``) through
``ctx.transaction``, so the tests count them in the participant's table.
``python -m tests.sagas.shop ROLE DB BROKER PREFIX [STEPS]`` runs one side as a process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import sqlalchemy as sa
from pydantic import BaseModel

import tidings
from tidings.outbox import Outbox, Relay
from tidings.resilience import Retry

STEPS = ("charge", "reserve", "book")


def step_names(n: int = 3) -> tuple[str, ...]:
    """The saga's steps: the three of the story, then ``step3`` ... (the crash test's 10)."""
    return STEPS[:n] + tuple(f"step{i}" for i in range(3, n))


class OrderState(BaseModel):
    order: str
    fail: str | None = None
    hang: str | None = None
    flaky: dict[str, int] = {}
    charge_id: str | None = None
    slow: float = 0.0
    bad: str | None = None


class StepCommand(BaseModel):
    order: str
    step: str
    fail: bool = False
    hang: bool = False
    flaky: int = 0
    slow: float = 0.0
    bad: bool = False


class Charged(BaseModel):
    charge_id: str


def topics(prefix: str, steps: int = 3) -> dict[str, tuple[str, str]]:
    known = {
        "charge": (f"{prefix}.pay.charge", f"{prefix}.pay.refund"),
        "reserve": (f"{prefix}.stock.reserve", f"{prefix}.stock.release"),
        "book": (f"{prefix}.ship.book", f"{prefix}.ship.cancel"),
    }
    return {n: known.get(n, (f"{prefix}.{n}.do", f"{prefix}.{n}.undo")) for n in step_names(steps)}


def make_saga(
    prefix: str, *, timeout: float = 30.0, pivot: str | None = None, steps: int = 3
) -> tidings.Saga:
    saga = tidings.Saga(f"{prefix}-order", state=OrderState, timeout=timeout)
    names = topics(prefix, steps)
    retry = Retry(
        max_attempts=3,
        retry_on=tidings.StepFailed,
        backoff=tidings.Backoff(initial=0.05, jitter=0.0),
    )
    passed_pivot = False
    for name in names:
        command, compensate = names[name]
        is_pivot = name == pivot

        def build(state: OrderState, name: str = name) -> StepCommand:
            return StepCommand(
                order=state.order,
                step=name,
                fail=state.fail == name,
                hang=state.hang == name,
                flaky=state.flaky.get(name, 0),
                slow=state.slow,
                bad=state.bad == name,
            )

        build.__name__ = name
        step = saga.step(
            command=command,
            pivot=is_pivot,
            retry=retry,
            compensate=None if (is_pivot or passed_pivot) else compensate,
        )(build)
        passed_pivot = passed_pivot or is_pivot
        if name == "charge":

            @step.on_reply
            def charged(state: OrderState, reply: Charged) -> None:
                state.charge_id = reply.charge_id

    return saga


def create_effects(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE IF NOT EXISTS effects (saga_id TEXT NOT NULL, step TEXT NOT NULL, "
            "kind TEXT NOT NULL, pid INTEGER)"
        )


def make_shop(prefix: str, db: str, broker: str, steps: int = 3, **options) -> tidings.Service:
    engine = sa.create_engine(db, pool_size=20, max_overflow=0)
    create_effects(engine)
    svc = tidings.Service(
        f"{prefix}-shop",
        broker,
        outbox=Outbox(engine),
        register=False,
        backoff=tidings.Backoff(initial=0.05, max_delay=0.5),
        **options,
    )
    participant = tidings.Participant(svc)
    attempts: dict[tuple[str, str], int] = {}

    def effect(ctx: tidings.Context, cmd: StepCommand, kind: str) -> None:
        ctx.transaction.execute(
            sa.text("INSERT INTO effects VALUES (:s, :step, :k, :pid)"),
            {"s": ctx.headers["tidings-saga-id"], "step": cmd.step, "k": kind, "pid": os.getpid()},
        )

    for command, compensate in topics(prefix, steps).values():

        @participant.command(command, concurrency=8, lease=5.0)
        async def do(cmd: StepCommand, ctx: tidings.Context) -> Charged | None:
            effect(ctx, cmd, "do")
            if cmd.slow:
                await asyncio.sleep(cmd.slow)
            if cmd.hang:
                raise RuntimeError("this participant never answers")
            n = attempts[(cmd.order, cmd.step)] = attempts.get((cmd.order, cmd.step), 0) + 1
            if cmd.fail or n <= cmd.flaky:
                raise tidings.StepFailed(f"{cmd.step} refused for {cmd.order} (attempt {n})")
            if cmd.bad:  # a reply that does not fit the step's reply type
                return {"charge": 42}  # type: ignore[return-value]
            return Charged(charge_id=f"ch-{cmd.order}") if cmd.step == "charge" else None

        @participant.compensation(compensate, concurrency=8, lease=5.0)
        async def undo(cmd: StepCommand, ctx: tidings.Context) -> None:
            effect(ctx, cmd, "undo")

    return svc


def make_orders(
    prefix: str, db: str, broker: str, *, tick: float = 0.2, partitions: int = 4, **saga_options
) -> tuple[tidings.Service, tidings.Orchestrator, tidings.Saga]:
    saga = make_saga(prefix, **saga_options)
    svc = tidings.Service(
        f"{prefix}-orders",
        broker,
        outbox=Outbox(sa.create_engine(db, pool_size=20, max_overflow=0)),
        register=False,
        backoff=tidings.Backoff(initial=0.05, max_delay=0.5),
    )
    orchestrator = tidings.Orchestrator(
        svc, [saga], partitions=partitions, tick=tick, lease=5.0, concurrency=max(16, partitions)
    )
    return svc, orchestrator, saga


@dataclass
class Shop:
    svc: tidings.Service
    orchestrator: tidings.Orchestrator
    saga: tidings.Saga
    shop: tidings.Service
    orders_db: str
    shop_db: str

    def effects(self, saga_id: str | None = None) -> list[tuple[str, str]]:
        engine = sa.create_engine(self.shop_db)
        try:
            with engine.connect() as conn:
                rows = conn.exec_driver_sql("SELECT saga_id, step, kind FROM effects").all()
        finally:
            engine.dispose()
        return [(r[1], r[2]) for r in rows if saga_id is None or r[0] == saga_id]


@contextlib.asynccontextmanager
async def running_shop(
    prefix: str, orders_db: str, shop_db: str, broker: str, **saga_options
) -> AsyncIterator[Shop]:
    svc, orchestrator, saga = make_orders(prefix, orders_db, broker, **saga_options)
    shop = make_shop(prefix, shop_db, broker)
    relays = [Relay(s.outbox, broker, max_interval=0.05) for s in (svc, shop)]  # type: ignore[arg-type]
    async with contextlib.AsyncExitStack() as stack:
        for part in (svc, shop, *relays):
            await stack.enter_async_context(part.running())
        yield Shop(svc, orchestrator, saga, shop, orders_db, shop_db)


def main(
    role: str, db: str, broker: str, prefix: str, steps: str = "3", partitions: str = "4"
) -> None:
    """A process of one side: ``orders`` (orchestrator and its relay) or ``shop``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if role == "orders":
        svc, _, _ = make_orders(prefix, db, broker, timeout=20.0, tick=0.5, steps=int(steps),
                                partitions=int(partitions))  # fmt: skip
    else:
        svc = make_shop(prefix, db, broker, steps=int(steps))
    svc.grace_period = 1.0
    relay = Relay(svc.outbox, broker, max_interval=0.05)  # type: ignore[arg-type]

    async def run() -> None:
        async with relay.running():
            await svc.serve()

    asyncio.run(run())


if __name__ == "__main__":
    main(*sys.argv[1:7])
