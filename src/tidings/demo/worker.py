"""A payment worker in its own process, so the demo can freeze and kill it for real.

``python -m tidings.demo.worker URL DB_URL WORKER CONCURRENCY COST LEASE TOPIC STATUS`` runs
the payment service as instance ``WORKER`` and prints ``ready`` once it has joined its groups.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from .services import Pace, consumer


async def main(argv: list[str]) -> None:
    url, db_url, worker, concurrency, cost, lease, topic, status_topic = argv
    svc = consumer(
        "payment", url, db_url, Pace(int(concurrency), float(cost)), lease=float(lease),
        worker=worker, topic=topic, status_topic=status_topic,
    )  # fmt: skip
    async with svc.running():
        print("ready", flush=True)
        await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    asyncio.run(main(sys.argv[1:]))
