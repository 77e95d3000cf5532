"""Micro-benchmark of the service framework's own cost per message: ``@svc.on`` consume,
``svc.publish`` and ``svc.publish_many``, over a fake client in one process (no broker, no
network), so that only the framework's work is timed.

- ``consume``: a ``@svc.on`` handler that returns (payload ``bytes`` and a ``Context``, the
  default middleware, ``concurrency=256``, the registration's statistics middleware as a
  registered service has), fed batches of ready messages; the fake ack only counts;
- ``publish``: ``svc.publish`` from 500 tasks, one after the other in each; the fake
  ``publish_async`` futures of one loop turn are resolved on the next;
- ``publish_many``: ``svc.publish_many`` of 500.

Run: ``python -m tidings.benchmarking.micro.service [--messages 40000] [--runs 3]``. Prints
the framework's CPU time per message (µs, ``time.process_time``) per mode and run, and the
medians. ``--profile MODE`` runs one mode once under cProfile.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from ...ids import default_snowflake
from ...model import Delivery, Message, Outgoing, Receipt
from ...service import Context, Service
from ...service.registration.stats import InstanceStats, StatsMiddleware
from ...transports.base import ALL_CAPABILITIES

BODY = b"x" * 256
BATCH = 500
CONCURRENCY = 256
HEADERS = {
    "content-type": "application/octet-stream",
    "tidings-type": "event",
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
}


class _Settler:
    def __init__(self) -> None:
        self.acked = 0

    async def ack(self, message: Message) -> None:
        self.acked += 1

    async def nack(self, message: Message, delay: float = 0.0, error: str | None = None) -> None:
        raise AssertionError("the benchmark's handler never fails")

    async def extend(self, message: Message, seconds: float) -> None:
        pass

    async def reject(self, message: Message, reason: str = "rejected") -> None:
        raise AssertionError("the benchmark's handler never fails")


class _Subscription:
    def __init__(self, messages: list[Message]) -> None:
        self.messages = messages
        self.closed = asyncio.Event()

    async def next_batch(self, max_count: int, timeout: float | None = None) -> list[Message]:
        await asyncio.sleep(0)  # one loop turn, as a frame's arrival
        if not self.messages:
            await self.closed.wait()
            return []
        batch, self.messages = self.messages[:max_count], self.messages[max_count:]
        return batch

    async def close(self) -> None:
        self.closed.set()


class _Transport:
    scheme = "fake"


class _Client:
    """What the service asks of an ``AsyncClient`` here, answered at once."""

    def __init__(self) -> None:
        self.transport = _Transport()
        self.capabilities = ALL_CAPABILITIES  # a broker that can do all the framework asks
        self.url = "fake://"
        self.messages: list[Message] = []
        self.pending: list[asyncio.Future[Receipt]] = []
        self.unnamed: list[Outgoing] = []
        self.receipt = Receipt("t", 0, 0, "id")

    async def create_topic(self, name: str, **options: Any) -> None:
        pass

    async def subscribe(self, topic: str, group: str, **options: Any) -> _Subscription:
        return _Subscription(self.messages)

    def publish_async(self, topic: str, body: bytes, **options: Any) -> asyncio.Future[Receipt]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self.pending:  # confirmed together on the next loop turn, as a batch would be
            loop.call_soon(self._confirm)
        self.pending.append(future)
        return future

    #: as a client with publish retries on: ids for messages without one, in bulk
    _assigns_ids = True

    def _submit(self, topic: str, message: Outgoing) -> asyncio.Future[Receipt]:
        self.unnamed.append(message)
        return self.publish_async(topic, message.body)

    def _confirm(self) -> None:
        pending, self.pending = self.pending, []
        unnamed, self.unnamed = self.unnamed, []
        need = [m for m in unnamed if m.msg_id is None]
        for m, msg_id in zip(need, default_snowflake().next_strs(len(need)), strict=True):
            m.msg_id = msg_id  # what the client's batch does before it is sent
        for future in pending:
            future.set_result(self.receipt)

    async def publish_many(self, topic: str, messages: Sequence[Outgoing]) -> list[Receipt]:
        return [self.receipt] * len(messages)

    async def close(self) -> None:
        pass


def _service(client: _Client) -> Service:
    svc = Service("bench-micro", register=False)
    svc.middleware.insert(0, StatsMiddleware(InstanceStats()))  # as a registered service has
    svc.client = client  # type: ignore[assignment]  # the fake answers what the service asks
    return svc


async def consume(messages: int) -> float:
    """µs of CPU per message handled by an ``@svc.on`` handler that returns."""
    client = _Client()
    settler = _Settler()
    for i in range(messages):
        delivery = Delivery("orders", "billing", 0, i, f"m{i}", f"k{i % 64}", dict(HEADERS),
                            BODY, 0.0, 1)  # fmt: skip
        client.messages.append(Message(delivery, settler))
    svc = _service(client)
    done = asyncio.Event()
    seen = 0

    @svc.on("orders", group="billing", concurrency=CONCURRENCY)
    async def handle(body: bytes, ctx: Context) -> None:
        nonlocal seen
        seen += 1
        if seen == messages:
            done.set()

    start = time.process_time()
    await svc.start()
    await done.wait()
    elapsed = time.process_time() - start
    await svc.stop(grace=0)
    assert settler.acked == messages, (settler.acked, messages)
    return elapsed / messages * 1e6


async def publish(messages: int) -> float:
    """µs of CPU per ``svc.publish`` from 500 tasks publishing one after the other each (as
    ``tidings bench`` does); the fake client confirms what a loop turn queued on the next."""
    svc = _service(_Client())
    each = messages // BATCH

    async def producer() -> None:
        for _ in range(each):
            await svc.publish("orders", BODY)

    start = time.process_time()
    await asyncio.gather(*(producer() for _ in range(BATCH)))
    return (time.process_time() - start) / (each * BATCH) * 1e6


async def publish_many(messages: int) -> float:
    """µs of CPU per message of ``svc.publish_many`` of 500."""
    svc = _service(_Client())
    bodies = [BODY] * BATCH
    start = time.process_time()
    for _ in range(messages // BATCH):
        await svc.publish_many("orders", bodies)
    return (time.process_time() - start) / (messages // BATCH * BATCH) * 1e6


MODES: dict[str, Callable[[int], Coroutine[Any, Any, float]]] = {
    "consume": consume,
    "publish": publish,
    "publish_many": publish_many,
}


def _run(mode: str, messages: int) -> float:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(MODES[mode](messages))
    return uvloop.run(MODES[mode](messages))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=40_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--profile", choices=list(MODES), help="one run of MODE under cProfile")
    args = parser.parse_args(argv)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(_run, args.profile, args.messages)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        return
    modes = args.modes.split(",")
    for mode in modes:
        _run(mode, min(args.messages, 5_000))  # warm-up
    results: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(args.runs):
        for mode in modes:
            results[mode].append(_run(mode, args.messages))
    for mode in modes:
        runs = ", ".join(f"{us:.2f}" for us in results[mode])
        print(f"{mode:13} {statistics.median(results[mode]):6.2f} µs/msg  (runs: {runs})")


if __name__ == "__main__":
    main()
