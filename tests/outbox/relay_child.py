"""A relay process for the crash and failover tests.

    python -m tests.outbox.relay_child DB_URL BROKER_URL MODE KILL_PROBABILITY [BATCH]

Runs ``tidings.outbox.Relay``; prints ``active <pid>`` once it leads. With a kill probability
above 0 it SIGKILLs itself after a batch the broker confirmed and before the rows are marked
(poll) or the slot's LSN confirmed (tail): the window where a crash makes the next relay send
the batch again. It dies at the latest after its third batch, so a test that needs a kill gets
one whenever there are rows to relay (a probability alone sometimes never fired: a fast tail
relay moved 3,000 rows in few large batches and lived).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import sys

import sqlalchemy as sa

from tidings.outbox import Outbox, Relay

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s: %(message)s")


async def main(db: str, broker: str, mode: str, kill: float, batch: int) -> None:
    relay = Relay(Outbox(sa.create_engine(db)), broker, mode=mode, batch_size=batch,  # type: ignore[arg-type]
                  leader_retry=0.25, report_interval=0.5)  # fmt: skip
    rng = random.Random()
    batches = 0

    def maybe_die(rows) -> None:
        nonlocal batches
        batches += 1
        if kill and (rng.random() < kill or batches >= 3):
            print(f"killing after {len(rows)} rows", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    relay.after_publish = maybe_die
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, relay.stop)

    async def announce() -> None:
        while relay.role != "active":
            await asyncio.sleep(0.02)
        print(f"active {os.getpid()}", flush=True)

    watcher = asyncio.create_task(announce())
    await relay.run()
    watcher.cancel()


if __name__ == "__main__":
    args = sys.argv[1:]
    batch = int(args[4]) if len(args) > 4 else 200
    asyncio.run(main(args[0], args[1], args[2], float(args[3]), batch))
