"""A service process for the SIGTERM test: handles one slow message, then waits for SIGTERM.

It prints ``handling`` when the handler starts and ``finished`` when it completes; the test
sends SIGTERM in between and expects a clean exit after ``finished``.
"""

from __future__ import annotations

import asyncio
import sys

import tidings
from tidings.service.runner import serve_with_signals

svc = tidings.Service("child", url="memory://child", grace_period=10)


@svc.on("jobs")
async def job(payload: dict) -> None:
    print("handling", flush=True)
    await asyncio.sleep(0.5)  # the work
    print("finished", flush=True)


async def main() -> None:
    serving = asyncio.create_task(serve_with_signals(svc))  # what svc.run() runs
    while svc.client is None or not svc._consumers:
        await asyncio.sleep(0.01)
    await svc.publish("jobs", {"n": 1})
    await serving
    print("stopped", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
