"""The workloads. Each takes a started engine and a profile and returns ``{metric: value}``.

Bodies start with the intended send time (``perf_counter``) and a sequence number, padded to
the message size. Latency is measured from the *intended* send time of a fixed-rate schedule
to the handler, so a stalled producer shows up as latency (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import itertools
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .engines import Client, Engine
from .profiles import Profile
from .stats import latency_summary

HEAD = struct.Struct(">dQI")  # send time, sequence, key index
SIZE = 256
BACKLOG_SIZE = 1024
_topics = itertools.count()


def body(seq: int, size: int = SIZE, key: int = 0, sent: float | None = None) -> bytes:
    head = HEAD.pack(time.perf_counter() if sent is None else sent, seq, key)
    return head + b"x" * (size - len(head))


@dataclass
class Context:
    engine: Engine
    profile: Profile
    #: topics filled by the publish workload, drained by consume: {topic: messages}
    backlog: dict[str, int] = field(default_factory=dict)


async def _client(engine: Engine) -> Client:
    client = engine.client()
    await client.connect()
    return client


def _topic(kind: str) -> str:
    return f"bench-{kind}-{next(_topics)}-{int(time.time() * 1000) % 1_000_000}"


def _cpu_us(since: float, n: int) -> float:
    """The harness process's CPU time per message since ``since`` (``time.process_time()``),
    in microseconds: the client library's cost, which a loaded machine changes less than the
    throughput (the broker runs in its own process and is not counted)."""
    return (time.process_time() - since) / n * 1e6


async def _pipelined(send: Callable[[int], Awaitable[None]], n: int, window: int) -> None:
    """``n`` single sends, ``window`` of them in flight at any time."""
    counter = itertools.count()

    async def worker() -> None:
        for i in iter(counter.__next__, None):
            if i >= n:
                return
            await send(i)

    await asyncio.gather(*(worker() for _ in range(min(window, n))))


BATCHES_IN_FLIGHT = 4


async def _fill(
    client: Client, topic: str, n: int, batch: int, size: int, made: list[bytes] | None = None
) -> None:
    """Publish ``n`` messages in batches, 4 batches in flight: the batched publish workload,
    and how backlogs are filled. Every engine pipelines its batches this way. ``made``: bodies
    built before the clock started (else each batch builds its own)."""
    chunks = [(s, min(n, s + batch)) for s in range(0, n, batch)]
    sem = asyncio.Semaphore(BATCHES_IN_FLIGHT)

    async def one(lo: int, hi: int) -> None:
        async with sem:
            bodies = made[lo:hi] if made is not None else [body(i, size) for i in range(lo, hi)]
            await client.publish_batch(topic, bodies)

    await asyncio.gather(*(one(lo, hi) for lo, hi in chunks))


class Counter:
    """Counts messages across consumers; ``done`` is set at ``target``."""

    def __init__(self, target: int, observe: Callable[[bytes, str | None], None] | None = None):
        self.target = target
        self.count = 0
        self.done = asyncio.Event()
        self.observe = observe
        self.finished_at = 0.0

    def __call__(self, data: bytes, key: str | None) -> bool:
        if self.observe is not None:
            self.observe(data, key)
        self.count += 1
        if self.count >= self.target:
            if not self.done.is_set():
                self.finished_at = time.perf_counter()
            self.done.set()
            return True
        return False


async def _consume_until(
    clients: list[Client], topic: str, groups: list[str], counter: Counter, **kw: object
) -> None:
    """Run one consumer per (client, group) until ``counter`` is done; cancel the rest."""
    tasks = [
        asyncio.create_task(c.consume(topic, g, counter, counter.done, **kw))  # type: ignore[arg-type]  # consume's options
        for c, g in zip(clients, groups, strict=True)
    ]
    waiter = asyncio.create_task(counter.done.wait())
    await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        if task.done() and (exc := task.exception()) is not None:
            waiter.cancel()
            raise exc
    await waiter
    _, late = await asyncio.wait(tasks, timeout=5.0)  # consumers see ``done`` within 1 s
    for task in late:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def publish(ctx: Context) -> dict[str, float]:
    p, client = ctx.profile, await _client(ctx.engine)
    try:
        topic = _topic("pub")
        await client.declare(topic, ["g"])
        # Bodies are made before the clock starts: the figures are the engine's and its
        # client's, not the harness's (making one costs about as much as publishing it).
        made = [body(i) for i in range(p.publish_n)]
        cpu0 = ctx.engine.cpu_seconds()
        t0, c0 = time.perf_counter(), time.process_time()
        await _pipelined(lambda i: client.publish_one(topic, made[i]), p.publish_n, client.window)
        single = p.publish_n / (time.perf_counter() - t0)
        single_cpu = _cpu_us(c0, p.publish_n)
        cpu1 = ctx.engine.cpu_seconds()
        t0, c0 = time.perf_counter(), time.process_time()
        await _fill(client, topic, p.publish_n, p.batch, SIZE, made)
        batched = p.publish_n / (time.perf_counter() - t0)
        ctx.backlog[topic] = 2 * p.publish_n
        out = {
            "publish.single": single,
            "publish.batch": batched,
            "publish.single.cpu": single_cpu,
            "publish.batch.cpu": _cpu_us(c0, p.publish_n),
        }
        if cpu0 is not None and cpu1 is not None:  # the broker's own CPU: steadier than msg/s
            out["publish.single.broker_us"] = (cpu1 - cpu0) / p.publish_n * 1e6
        futures = getattr(client, "publish_futures", None)
        if futures is not None:  # an engine's publish-without-waiting API (publish_async)
            topic = _topic("pub-async")
            await client.declare(topic, [])
            t0 = time.perf_counter()
            await futures(topic, made)
            out["publish.async"] = p.publish_n / (time.perf_counter() - t0)
        raw = getattr(client, "raw", None)
        if raw is not None:  # the extra, labelled row: below the public API
            out["publish.single.raw"] = await _publish_single(raw(), p.publish_n, made)
        return out
    finally:
        await client.close()


async def _publish_single(client: Client, n: int, made: list[bytes]) -> float:
    await client.connect()
    try:
        topic = _topic("pub-raw")
        await client.declare(topic, [])
        t0 = time.perf_counter()
        await _pipelined(lambda i: client.publish_one(topic, made[i]), n, client.window)
        return n / (time.perf_counter() - t0)
    finally:
        await client.close()


async def consume(ctx: Context) -> dict[str, float]:
    p = ctx.profile
    if ctx.backlog:
        topic, n = ctx.backlog.popitem()
    else:
        topic, n = _topic("con"), p.publish_n
        producer = await _client(ctx.engine)
        await producer.declare(topic, ["g"])
        await _fill(producer, topic, n, p.batch, SIZE)
        await producer.close()
    client = await _client(ctx.engine)
    try:
        counter = Counter(n)
        cpu0 = ctx.engine.cpu_seconds()
        t0, c0 = time.perf_counter(), time.process_time()
        await _consume_until([client], topic, ["g"], counter)
        cpu1 = ctx.engine.cpu_seconds()
        out = {"consume": n / (counter.finished_at - t0), "consume.cpu": _cpu_us(c0, n)}
        if cpu0 is not None and cpu1 is not None:
            out["consume.broker_us"] = (cpu1 - cpu0) / n * 1e6
        for mode in client.extra_consume_modes:  # the engine's other consume idioms
            topic, n = _topic(f"con-{mode}"), p.publish_n
            await client.declare(topic, ["g"])
            await _fill(client, topic, n, p.batch, SIZE)
            client.mode = mode
            counter = Counter(n)
            t0 = time.perf_counter()
            await _consume_until([client], topic, ["g"], counter)
            out[f"consume.{mode}"] = n / (counter.finished_at - t0)
            client.mode = ""
        return out
    finally:
        await client.close()


async def mpmc(ctx: Context) -> dict[str, float]:
    """4 producers (single publishes, pipelined) and 4 consumers of one group at once."""
    p = ctx.profile
    producers = [await _client(ctx.engine) for _ in range(4)]
    consumers = [await _client(ctx.engine) for _ in range(4)]
    try:
        topic = _topic("mpmc")
        await producers[0].declare(topic, ["g"])
        share = p.mpmc_n // 4
        counter = Counter(share * 4)
        t0 = time.perf_counter()
        consuming = asyncio.create_task(_consume_until(consumers, topic, ["g"] * 4, counter))

        async def produce(c: Client) -> None:
            await _pipelined(lambda i: c.publish_one(topic, body(i)), share, c.window // 4)

        await asyncio.gather(*(produce(c) for c in producers))
        await consuming
        return {"mpmc.4x4": counter.target / (counter.finished_at - t0)}
    finally:
        for c in producers + consumers:
            await c.close()


async def fanout(ctx: Context) -> dict[str, float]:
    """1 producer, 4 groups each receiving everything; deliveries per second."""
    p = ctx.profile
    producer = await _client(ctx.engine)
    consumers = [await _client(ctx.engine) for _ in range(4)]
    groups = [f"g{i}" for i in range(4)]
    try:
        topic = _topic("fan")
        await producer.declare(topic, groups)
        counters = [Counter(p.fanout_n) for _ in groups]
        t0 = time.perf_counter()
        tasks = [
            asyncio.create_task(_consume_until([c], topic, [g], k))
            for c, g, k in zip(consumers, groups, counters, strict=True)
        ]
        await _pipelined(
            lambda i: producer.publish_one(topic, body(i)), p.fanout_n, producer.window
        )
        await asyncio.gather(*tasks)
        end = max(k.finished_at for k in counters)
        return {"fanout.4groups": 4 * p.fanout_n / (end - t0)}
    finally:
        for c in [producer, *consumers]:
            await c.close()


async def latency(ctx: Context) -> dict[str, float]:
    """Fixed-rate publishing; publish-to-handler latency (the handler then acks)."""
    p, out = ctx.profile, {}
    for rate in p.latency_rates:
        out.update(await _latency_at(ctx.engine, rate, p.latency_seconds))
    return out


async def _latency_at(engine: Engine, rate: int, seconds: float) -> dict[str, float]:
    producer, consumer = await _client(engine), await _client(engine)
    try:
        topic = _topic("lat")
        await producer.declare(topic, ["g"])
        n = int(rate * seconds)
        samples: list[float] = []

        def record(data: bytes, key: str | None) -> None:
            samples.append(time.perf_counter() - HEAD.unpack_from(data)[0])

        counter = Counter(n, record)
        consuming = asyncio.create_task(_consume_until([consumer], topic, ["g"], counter))
        pending: set[asyncio.Task[None]] = set()
        start = time.perf_counter() + 0.2  # let the consumer attach
        await asyncio.sleep(0.2)
        sent = 0
        while sent < n:
            due = min(n, int((time.perf_counter() - start) * rate) + 1)
            while sent < due:
                intended = start + sent / rate
                task = asyncio.create_task(producer.publish_one(topic, body(sent, sent=intended)))
                pending.add(task)
                task.add_done_callback(pending.discard)
                sent += 1
            await asyncio.sleep(0.0005)
        await consuming
        await asyncio.gather(*pending)
        warm = samples[len(samples) // 20 :]  # the first 5% warm the path up
        stats = latency_summary(warm)
        return {f"latency.{rate}.{k}": v for k, v in stats.items()}
    finally:
        await producer.close()
        await consumer.close()


async def backlog(ctx: Context) -> dict[str, float]:
    """A backlog of 1 KB messages: publish, broker RSS, restart time, then drain."""
    p, engine = ctx.profile, ctx.engine
    topic = _topic("backlog")
    client = await _client(engine)
    try:
        await client.declare(topic, ["g"])
        t0 = time.perf_counter()
        await _fill(client, topic, p.backlog_n, p.batch, BACKLOG_SIZE)
        fill_rate = p.backlog_n / (time.perf_counter() - t0)
    finally:
        await client.close()
    await asyncio.sleep(0.5)  # let background work (group commit, compaction) settle
    rss = engine.rss_bytes()
    engine.stop()
    t0 = time.perf_counter()
    engine.start()
    await engine.wait_recovered(topic)
    restart = time.perf_counter() - t0
    rss_after = engine.rss_bytes()
    client = await _client(engine)
    try:
        counter = Counter(p.backlog_n)
        t0 = time.perf_counter()
        await _consume_until([client], topic, ["g"], counter)
        drain = p.backlog_n / (counter.finished_at - t0)
    finally:
        await client.close()
    return {
        "backlog.publish": fill_rate,
        "backlog.rss_mb": rss / 1e6,
        "backlog.restart_s": restart,
        "backlog.rss_after_restart_mb": rss_after / 1e6,
        "backlog.drain": drain,
    }


KEYS = 64
PARTITIONS = 8
MEMBERS = 4


async def ordered(ctx: Context) -> dict[str, float]:
    """8 partitions, 4 members of one ordered group, 64 keys; per-key order is checked."""
    p = ctx.profile
    producer = await _client(ctx.engine)
    members = [await _client(ctx.engine) for _ in range(MEMBERS)]
    try:
        topic = _topic("ord")
        await producer.declare(topic, ["g"], partitions=PARTITIONS, ordered=True)
        for m in members:
            m.use_partitions(topic, PARTITIONS)
        last: dict[int, int] = {}
        violations = 0

        def check(data: bytes, key: str | None) -> None:
            nonlocal violations
            _, seq, k = HEAD.unpack_from(data)
            if seq < last.get(k, -1):
                violations += 1
            last[k] = max(seq, last.get(k, -1))

        n = p.ordered_n - p.ordered_n % KEYS
        counter = Counter(n, check)
        tasks = [
            asyncio.create_task(
                _consume_until(
                    [m],
                    topic,
                    ["g"],
                    counter,
                    member=i,
                    members=MEMBERS,
                    ordered=True,
                    partitions=PARTITIONS,
                )
            )
            for i, m in enumerate(members)
        ]
        await asyncio.sleep(1.0)  # members join and partitions are assigned
        t0 = time.perf_counter()
        for start in range(0, n, p.batch):
            seqs = range(start, min(n, start + p.batch))
            bodies = [HEAD.pack(0.0, s // KEYS, s % KEYS).ljust(SIZE, b"x") for s in seqs]
            await producer.publish_batch(topic, bodies, [f"key-{s % KEYS}" for s in seqs])
        await counter.done.wait()
        rate = n / (counter.finished_at - t0)
        await asyncio.gather(*tasks)
        return {"ordered.8p4m": rate, "ordered.violations": float(violations)}
    finally:
        for c in [producer, *members]:
            await c.close()


WORKLOADS: dict[str, Callable[[Context], Awaitable[dict[str, float]]]] = {
    "publish": publish,
    "consume": consume,
    "mpmc": mpmc,
    "fanout": fanout,
    "latency": latency,
    "backlog": backlog,
    "ordered": ordered,
}
