"""Key lanes: messages with the same key run one after another, different keys in parallel.

Ordered handlers hand every message to :class:`KeyLanes`. Each key with pending messages has a
lane (a queue and one task working through it in arrival order); keyless messages have no
order to keep and each runs at once. The caller bounds the total in flight (the handler's
concurrency), so the number of lanes is bounded too.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from ..model import Message

Runner = Callable[[Message], Awaitable[None]]


class KeyLanes:
    def __init__(self, run: Runner) -> None:
        self._run = run
        self._lanes: dict[str, deque[Message]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = False

    def __len__(self) -> int:
        return len(self._lanes)

    def pending(self) -> list[Message]:
        """Messages received but not started yet."""
        return [m for lane in self._lanes.values() for m in list(lane)[1:]]

    def submit(self, message: Message) -> None:
        key = message.key
        if key is None:
            self._spawn(self._run(message), f"tidings-keyless-{message.id}")
        elif key in self._lanes:
            self._lanes[key].append(message)
        else:
            self._lanes[key] = deque([message])
            self._spawn(self._drain(key), f"tidings-lane-{key}")

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _drain(self, key: str) -> None:
        lane = self._lanes[key]
        try:
            while lane and not self.stopping:
                await self._run(lane[0])
                lane.popleft()
        finally:
            del self._lanes[key]
