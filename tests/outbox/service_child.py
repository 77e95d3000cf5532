"""A service worker for the killed-worker test of the outbox chain.

    python -m tests.outbox.service_child DB_URL BROKER_URL SOURCE_TOPIC SINK_TOPIC

Each command: insert an effect row, emit an event through the outbox, record the message id,
all in one transaction (idempotent handler, outbox on the same PostgreSQL database). Short
leases, so messages of a SIGKILLed worker come again soon.
"""

from __future__ import annotations

import asyncio
import os
import sys

import sqlalchemy as sa

import tidings
from tidings.outbox import Outbox


def main(db: str, broker: str, source: str, sink: str) -> None:
    svc = tidings.Service("billing", broker, outbox=Outbox(sa.create_engine(db)),
                          register=False, grace_period=1.0)  # fmt: skip

    @svc.on(source, idempotent=True, concurrency=4, lease=2.0)
    async def bill(command: dict, ctx: tidings.Context) -> None:
        order = command["order"]
        ctx.transaction.execute(
            sa.text("INSERT INTO effects (order_id, worker) VALUES (:o, :w)"),
            {"o": order, "w": os.getpid()},
        )
        await asyncio.sleep(0.02)  # a kill lands inside open transactions too
        await ctx.publish(sink, {"order": order}, key=order)

    svc.run()


if __name__ == "__main__":
    main(*sys.argv[1:5])
