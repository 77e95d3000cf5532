"""The child process of the dead-instance benchmark: ``python -m
tidings.benchmarking.discovery.dying URL HEARTBEAT COUNT`` runs COUNT services with that
heartbeat, started at staggered times (so their beats fall at different phases), prints
``ready`` once all are registered, and runs until it is SIGKILLed."""

from __future__ import annotations

import asyncio
import sys

from ...service import Service


async def run(url: str, heartbeat: float, count: int) -> None:
    services = [
        Service(f"bench-dying-{i}", url, heartbeat=heartbeat, default_middleware=False)
        for i in range(count)
    ]
    for svc in services:
        await svc.start()
        await asyncio.sleep(heartbeat / count)
    ids = [s.registration.instance for s in services if s.registration is not None]
    print("ready " + " ".join(ids), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1], float(sys.argv[2]), int(sys.argv[3])))
