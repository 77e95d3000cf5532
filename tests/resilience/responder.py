"""A responder process for the resilience tests on a real broker.

    python tests/resilience/responder.py URL TOPIC NAME DELAY

Answers requests on TOPIC (group ``responders``) with ``{"by": NAME}`` after DELAY seconds,
prints ``ready`` once it is subscribed, and runs until it is killed.
"""

from __future__ import annotations

import asyncio
import sys

import tidings


async def main(url: str, topic: str, name: str, delay: float) -> None:
    svc = tidings.Service(f"responder-{name}", url=url)

    @svc.reply(topic, group="responders")
    async def answer(query: dict) -> dict:
        await asyncio.sleep(delay)
        return {"by": name}

    async with svc.running():
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
