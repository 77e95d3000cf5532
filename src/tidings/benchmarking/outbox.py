"""``tidings bench outbox``: what the transactional outbox costs next to a plain publish.

Every path writes the same messages to a real tidings:// broker process, and a consumer on the
same broker takes them; the paths, side by side in one run:

- **publish**: ``Service.publish`` alone, no database (the floor);
- **row, then publish**: commit a row of a business table, then ``Service.publish`` (what the
  outbox replaces: not atomic, a crash in between loses the event);
- **outbox**: ``Service(outbox=Outbox(engine))`` and ``async with svc.transaction() as tx:``
  insert the row and ``await tx.publish(...)`` in one transaction; a relay process
  (``tidings outbox relay``) moves the rows: poll mode with a few batch sizes and intervals,
  and tail mode on PostgreSQL.

on SQLite (a file) and on PostgreSQL (a cluster the run starts: fsync on, ``wal_level=logical``).
Two phases per path: **throughput**, 8 writer tasks with one message per transaction (rows/s
committed, and rows/s until the consumer had the last one); **latency**, one transaction every
1/rate s, timed from the commit's start (for the publish paths: from the moment the row
committed, or the publish was called) until the consumer has the message; p50/p99. With
``--rows-per-tx K`` each transaction of the latency phase carries K messages (an order row and
its K events, a common shape), the offered rate staying in messages/s. Also the
relay's CPU time, PostgreSQL's (server and backends), and the WAL written per row and retained
by the slot.

Options: ``--quick`` / ``--smoke`` (smaller counts), ``--rate N`` (latency phase, messages/s),
``--rows-per-tx K`` (messages per transaction in the latency phase),
``--writer-procs N`` (the outbox paths' latency phase from N writer processes,
``outbox_writers``: one process cannot offer 2,000 transactions/s), ``--only TEXT`` (the paths
whose label contains TEXT), ``--no-postgres``, ``--json``. Bounded: every wait has a
deadline; every server binds 127.0.0.1 and is stopped by its PID (writer processes by theirs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .postgres import Postgres, pg_bin_dir, tree_cpu
from .procs import ServerProcess, free_port, wait_until
from .stats import percentile

WRITERS = 8
IN_FLIGHT = 16  # transactions of the latency phase under way at once (each holds a connection)


@dataclass(frozen=True)
class Variant:
    label: str
    kind: str  # "publish", "row+publish", "outbox"
    mode: str = "poll"
    batch: int | None = None
    interval: float = 1.0


SIZES: dict[str, dict[str, Any]] = {  # messages per throughput run, latency seconds, rate
    "smoke": {"count": 300, "seconds": 1.0, "rate": 50},
    "quick": {"count": 3_000, "seconds": 4.0, "rate": 200},
    "full": {"count": 20_000, "seconds": 10.0, "rate": 500},
}


def paths(db: str, size: str) -> list[Variant]:
    plain = [Variant("publish", "publish"), Variant("row, then publish", "row+publish")]
    if size == "smoke":
        relays = [Variant("outbox poll (batch 500)", "outbox", "poll", 500, 0.05)]
    elif db == "sqlite":
        relays = [
            Variant("outbox poll (batch 100, interval 0.05 s)", "outbox", "poll", 100, 0.05),
            Variant("outbox poll (batch 500, interval 0.05 s)", "outbox", "poll", 500, 0.05),
            Variant("outbox poll (batch 500, interval 0.25 s)", "outbox", "poll", 500, 0.25),
        ]
    else:  # PostgreSQL wakes a polling relay by NOTIFY: the interval hardly matters
        relays = [
            Variant("outbox poll (batch 100)", "outbox", "poll", 100, 1.0),
            Variant("outbox poll (batch 500)", "outbox", "poll", 500, 1.0),
        ]
    if db == "postgresql":
        relays.append(Variant("outbox tail (batch 2000)", "outbox", "tail", 2000))
    return plain + relays


class Collector:
    """A consumer on ``topic`` noting when each sequence number arrived."""

    def __init__(self, client: Any, topic: str) -> None:
        self.client, self.topic = client, topic
        self.arrived: dict[int, float] = {}
        self.arrived_wall: dict[int, float] = {}  # time.time(), for the writer processes
        self.warm = 0  # warm-up messages seen
        self._task: asyncio.Task[None] | None = None
        self._sub: Any = None

    async def start(self) -> None:
        await self.client.create_topic(self.topic, exist_ok=True)
        self._sub = await self.client.subscribe(
            self.topic, f"bench-{secrets.token_hex(3)}", auto_ack=True, prefetch=2000
        )
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batch = await self._sub.next_batch(2000, timeout=1.0)
            now, wall = time.perf_counter(), time.time()
            for m in batch:
                i = json.loads(m.body)["i"]
                if i >= 0:
                    self.arrived.setdefault(i, now)
                    self.arrived_wall.setdefault(i, wall)
                else:
                    self.warm += 1

    async def wait(self, count: int, timeout: float) -> float:
        """The time the ``count``-th message arrived; raises after ``timeout`` seconds."""
        deadline = time.perf_counter() + timeout
        while len(self.arrived) < count:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{len(self.arrived)} of {count} messages arrived")
            await asyncio.sleep(0.005)
        return max(self.arrived.values())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.close()


class Setup:
    """A database for one path: the business table, and for outbox paths the outbox, the
    service writing through it and the relay process."""

    def __init__(self, db_url: str, path: Variant, broker: str, workdir: Path) -> None:
        import sqlalchemy as sa

        from .. import Service
        from ..outbox import Outbox

        self.sa = sa
        self.path, self.broker, self.db_url, self.workdir = path, broker, db_url, workdir
        sqlite = db_url.startswith("sqlite")
        options = {"connect_args": {"timeout": 30}} if sqlite else {"pool_size": IN_FLIGHT + 4}
        self.engine = sa.create_engine(db_url, **options)
        # SQLite has one writer at a time: the row commits take turns (the outbox's do too)
        self.turn: contextlib.AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if sqlite else contextlib.nullcontext()
        )
        with self.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER)")
        self.insert = sa.text("INSERT INTO orders (id, total) VALUES (:i, 42)")
        self.outbox = Outbox(self.engine) if path.kind == "outbox" else None
        if self.outbox is not None:
            self.outbox.create_table()
        self.svc = Service(f"bench-outbox-{secrets.token_hex(2)}", broker, outbox=self.outbox,
                           register=False, default_middleware=False)  # fmt: skip
        self.relay: ServerProcess | None = None
        self.next_id = 0

    def start_relay(self) -> None:
        p = self.path
        argv = [sys.executable, "-m", "tidings.cli", "outbox", "relay", "--db", self.db_url,
                "--broker", self.broker, "--mode", p.mode,
                "--interval", str(p.interval)]  # fmt: skip
        if p.batch:
            argv += ["--batch-size", str(p.batch)]
        log = self.workdir / f"relay-{secrets.token_hex(3)}.log"
        self.relay = ServerProcess(argv, log).start()

    def relay_cpu(self) -> float:
        return tree_cpu(self.relay.pid) if self.relay is not None and self.relay.running() else 0.0

    async def write(self, topic: str, i: int, k: int = 1) -> float:
        """Write messages ``i .. i + k - 1`` (one business row, one transaction); the time
        they count from (the commit, or the publish call)."""
        row = self.next_id = self.next_id + 1
        payloads = [{"i": n} for n in range(i, i + k)]
        if self.path.kind == "publish":
            t = time.perf_counter()
            await self._publish(topic, payloads)
            return t
        if self.path.kind == "row+publish":
            async with self.turn:
                await asyncio.to_thread(self._commit_row, row)
            t = time.perf_counter()
            await self._publish(topic, payloads)
            return t
        async with self.svc.transaction() as tx:
            tx.execute(self.insert, {"i": row})
            if k == 1:
                await tx.publish(topic, payloads[0])
            else:
                await tx.publish_many(topic, payloads)
            t = time.perf_counter()  # the commit starts as the block ends
        # not after the block: a tail relay can deliver the row before this task is resumed
        # from the commit, which made latencies negative
        return t

    async def _publish(self, topic: str, payloads: list[dict[str, int]]) -> None:
        if len(payloads) == 1:
            await self.svc.publish(topic, payloads[0])
        else:
            await self.svc.publish_many(topic, payloads)

    def _commit_row(self, row: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.insert, {"i": row})

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Setup]:
        try:
            if self.path.kind == "outbox":
                self.start_relay()
                yield self
            else:
                async with self.svc.running():
                    yield self
        finally:
            if self.relay is not None:
                self.relay.stop()
            self.engine.dispose()


async def warm_up(setup: Setup, collector: Collector, topic: str) -> None:
    """One message through the path (the relay is active and connected), not counted."""
    before = collector.warm
    await setup.write(topic, -1)
    deadline = time.perf_counter() + 60
    while collector.warm == before:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"the warm-up message did not arrive: {setup.path.label}")
        await asyncio.sleep(0.005)


async def throughput(setup: Setup, client: Any, count: int, timeout: float) -> dict[str, float]:
    topic = f"bench.outbox.{secrets.token_hex(4)}"
    collector = Collector(client, topic)
    await collector.start()
    try:
        await warm_up(setup, collector, topic)
        cpu0 = setup.relay_cpu()
        queue = iter(range(count))

        async def writer() -> None:
            for i in queue:
                await setup.write(topic, i)

        t0 = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(WRITERS)))
        written = time.perf_counter() - t0
        last = await collector.wait(count, timeout)
        return {
            "written_per_s": count / written,
            "delivered_per_s": count / (last - t0),
            "relay_cpu_s": setup.relay_cpu() - cpu0,
        }
    finally:
        await collector.close()


async def drain(setup: Setup, client: Any, count: int, timeout: float) -> dict[str, float]:
    """The relay's own pace: ``count`` rows committed in one transaction
    (``Outbox.publish_many``), timed from the commit until the consumer has the last one."""
    assert setup.outbox is not None
    outbox = setup.outbox
    topic = f"bench.outbox.drain.{secrets.token_hex(4)}"
    collector = Collector(client, topic)
    await collector.start()
    try:
        await warm_up(setup, collector, topic)
        payloads = [{"i": i} for i in range(count)]

        def commit() -> float:
            with setup.engine.begin() as conn:
                for start in range(0, count, 1000):
                    outbox.publish_many(conn, topic, payloads[start : start + 1000])
            return time.perf_counter()

        cpu0 = setup.relay_cpu()
        committed = await asyncio.to_thread(commit)
        last = await collector.wait(count, timeout)
        return {"drain_per_s": count / (last - committed),
                "drain_relay_cpu_s": setup.relay_cpu() - cpu0}  # fmt: skip
    finally:
        await collector.close()


async def latency(
    setup: Setup, client: Any, rate: float, seconds: float, timeout: float, k: int = 1
) -> dict[str, float]:
    topic = f"bench.outbox.lat.{secrets.token_hex(4)}"
    collector = Collector(client, topic)
    await collector.start()
    try:
        await warm_up(setup, collector, topic)
        count = max(k, int(rate * seconds) // k * k)
        committed: dict[int, float] = {}
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def one(i: int) -> None:
            async with gate:
                t = await setup.write(topic, i, k)
            committed.update(dict.fromkeys(range(i, i + k), t))

        tasks = []
        t0 = time.perf_counter()
        for i in range(0, count, k):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        sent = time.perf_counter() - t0
        await collector.wait(count, timeout)
        lat = sorted(collector.arrived[i] - committed[i] for i in range(count))
        return {
            "rate": count / sent,
            "rows_per_tx": k,
            "p50_ms": percentile(lat, 50) * 1e3,
            "p99_ms": percentile(lat, 99) * 1e3,
        }
    finally:
        await collector.close()


async def latency_procs(
    setup: Setup,
    client: Any,
    rate: float,
    seconds: float,
    timeout: float,
    procs: int,
    db_cpu: Any = lambda: 0.0,
    rows_per_tx: int = 1,
) -> dict[str, float]:
    """The latency phase with ``procs`` writer processes (``outbox_writers``), each at
    rate/procs on one fixed wall-clock schedule; latency from each commit's start (and, as
    ``p99_sched_ms``, from the message's due time, which also counts a writer falling behind)."""
    topic = f"bench.outbox.lat.{secrets.token_hex(4)}"
    collector = Collector(client, topic)
    await collector.start()
    try:
        await warm_up(setup, collector, topic)
        k = rows_per_tx
        count = max(k, int(rate * seconds) // k * k)
        t0 = time.time() + 1.0 + 0.3 * procs  # the processes import and connect before it
        relay0, db0 = setup.relay_cpu(), db_cpu()
        children = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tidings.benchmarking.outbox_writers",
                "--db",
                setup.db_url,
                "--topic",
                topic,
                "--index",
                str(index),
                "--procs",
                str(procs),
                "--count",
                str(count),
                "--rate",
                str(rate),
                "--t0",
                repr(t0),
                "--rows-per-tx",
                str(k),
                stdout=asyncio.subprocess.PIPE,
            )
            for index in range(procs)
        ]
        try:
            outs = await asyncio.wait_for(
                asyncio.gather(*(c.communicate() for c in children)), timeout + seconds
            )
        finally:
            for c in children:
                if c.returncode is None:
                    c.kill()
                    await c.wait()
        committed: dict[int, float] = {}
        late = writers_cpu = 0.0
        for c, (out, _) in zip(children, outs, strict=True):
            if c.returncode != 0:
                raise RuntimeError(f"a writer process exited with {c.returncode}")
            res = json.loads(out.decode().strip().splitlines()[-1])
            committed.update({int(i): t for i, t in res["committed"].items()})
            late = max(late, res["late_max_s"])
            writers_cpu += res["cpu_s"]
        last_commit = max(committed.values())
        await collector.wait(count, timeout)
        relay_cpu, db_cpu_s = setup.relay_cpu() - relay0, db_cpu() - db0
        arrived = collector.arrived_wall
        lat = sorted(arrived[i] - committed[i] for i in range(count))
        sched = sorted(arrived[i] - (t0 + i / rate) for i in range(count))
        return {
            "rate": count / (last_commit - t0) if last_commit > t0 else float(count),
            "rows_per_tx": k,
            "p50_ms": percentile(lat, 50) * 1e3,
            "p99_ms": percentile(lat, 99) * 1e3,
            "p99_sched_ms": percentile(sched, 99) * 1e3,
            "writer_late_max_ms": late * 1e3,
            "writer_procs": procs,
            "lat_writers_cpu_s": writers_cpu,
            "lat_relay_cpu_s": relay_cpu,
            "lat_db_cpu_s": db_cpu_s,
        }
    finally:
        await collector.close()


def _wal_lsn(pg: Postgres) -> int:
    return int(pg.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')")[0][0])


def _slot_retained(pg: Postgres, database: str) -> int:
    rows = pg.execute(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) FROM pg_replication_slots "
        f"WHERE database = '{database}'"
    )
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


async def run_db(
    db: str,
    size: str,
    rate: float,
    broker: str,
    workdir: Path,
    procs: int = 0,
    only: str | None = None,
    k: int = 1,
) -> dict[str, Any]:
    from .. import AsyncClient

    sz = SIZES[size]
    timeout = 30 + sz["count"] / 200  # generous: a loaded machine, but never unbounded
    pg = Postgres().start() if db == "postgresql" else None
    results: dict[str, Any] = {}
    try:
        async with AsyncClient(broker) as client:
            for n, path in enumerate(paths(db, size)):
                if only is not None and only not in path.label:
                    continue
                name = f"bench_{n}_{secrets.token_hex(2)}"
                url = pg.create_database(name) if pg else f"sqlite:///{workdir / name}.db"
                setup = Setup(url, path, broker, workdir)
                async with setup.running():
                    cpu0 = tree_cpu(pg.pid) if pg else 0.0
                    wal0 = _wal_lsn(pg) if pg else 0
                    row: dict[str, Any] = await throughput(setup, client, sz["count"], timeout)
                    if pg is not None:
                        row["db_cpu_s"] = tree_cpu(pg.pid) - cpu0
                        row["wal_bytes_per_row"] = (_wal_lsn(pg) - wal0) / sz["count"]
                        row["slot_retained_bytes"] = _slot_retained(pg, name)
                    if procs and path.kind == "outbox":
                        pg_cpu = (lambda: tree_cpu(pg.pid)) if pg else (lambda: 0.0)
                        row.update(await latency_procs(setup, client, rate, sz["seconds"],
                                                       timeout, procs, pg_cpu, k))  # fmt: skip
                    else:
                        row.update(await latency(setup, client, rate, sz["seconds"], timeout, k))
                    if path.kind == "outbox":
                        row.update(await drain(setup, client, 2 * sz["count"], timeout))
                results[path.label] = row
    finally:
        if pg is not None:
            pg.stop()
    base = results["publish"]["delivered_per_s"] if "publish" in results else None
    for row in results.values():
        row["vs_publish"] = row["delivered_per_s"] / base if base else float("nan")
    return results


def _broker(workdir: Path) -> tuple[ServerProcess, str]:
    port = free_port()
    argv = [sys.executable, "-m", "tidings.server", "--host", "127.0.0.1", "--port", str(port),
            "--data", str(workdir / "broker")]  # fmt: skip
    proc = ServerProcess(argv, workdir / "broker.log").start()
    wait_until(lambda: proc.port_ready("the broker", port), 30, "broker start")
    return proc, f"tidings://127.0.0.1:{port}"


async def run(
    size: str,
    rate: float | None,
    postgres: bool,
    procs: int = 0,
    only: str | None = None,
    k: int = 1,
) -> dict[str, Any]:
    import sqlalchemy

    from .. import __version__

    rate = rate or SIZES[size]["rate"]
    out: dict[str, Any] = {
        "size": size,
        "rate": rate,
        "writer_procs": procs,
        "rows_per_tx": k,
        "versions": {"tidings": __version__, "sqlalchemy": sqlalchemy.__version__},
    }
    with tempfile.TemporaryDirectory(prefix="tidings-bench-outbox-") as tmp:
        workdir = Path(tmp)
        broker, url = _broker(workdir)
        try:
            for db in ("sqlite", "postgresql") if postgres else ("sqlite",):
                if db == "postgresql" or only is None or any(only in v.label for v in
                                                             paths(db, size)):  # fmt: skip
                    out[db] = await run_db(db, size, rate, url, workdir, procs, only, k)
        finally:
            broker.stop()
    return out


def report(res: dict[str, Any]) -> str:
    k = res.get("rows_per_tx", 1)
    per_tx = f", {k} messages per transaction" if k > 1 else ""
    lines = [
        f"## Outbox vs plain publish ({res['size']}; latency at {res['rate']:.0f} msg/s{per_tx})"
    ]
    for db in ("sqlite", "postgresql"):
        if db not in res:
            continue
        pg = db == "postgresql"
        head = (
            "| path | written/s | delivered/s | vs publish | p50 ms | p99 ms | relay CPU s "
            "| relay drain rows/s |"
        )
        sep = "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        if pg:
            head += " DB CPU s | WAL B/row | slot keeps B |"
            sep += " ---: | ---: | ---: |"
        lines += ["", f"### {'PostgreSQL' if pg else 'SQLite'}", "", head, sep]
        for label, r in res[db].items():
            line = (
                f"| {label} | {r['written_per_s']:,.0f} | {r['delivered_per_s']:,.0f} | "
                f"{r['vs_publish']:.2f}x | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                f"{r['relay_cpu_s']:.2f} | "
                + (f"{r['drain_per_s']:,.0f} |" if "drain_per_s" in r else "- |")
            )
            if pg:
                line += (
                    f" {r['db_cpu_s']:.2f} | {r['wal_bytes_per_row']:,.0f} | "
                    f"{r['slot_retained_bytes']:,} |"
                )
            lines.append(line)
        for label, r in res[db].items():
            if "p99_sched_ms" in r:
                lines.append(
                    f"\n{label}: {r['writer_procs']} writer processes offered "
                    f"{r['rate']:,.0f} msg/s ({r['rate'] / k:,.0f} tx/s); "
                    f"p99 from the due time {r['p99_sched_ms']:.1f} ms, "
                    f"a writer at most {r['writer_late_max_ms']:.1f} ms behind its schedule."
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tidings bench outbox", description=__doc__.split("\n")[0])
    sizes = p.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="smaller counts (a few minutes)")
    sizes.add_argument("--smoke", action="store_true", help="tiny counts (the test suite)")
    p.add_argument("--rate", type=float, help="messages/s of the latency phase")
    p.add_argument("--rows-per-tx", type=int, default=1, metavar="K",
                   help="messages per transaction in the latency phase (default 1)")  # fmt: skip
    p.add_argument("--no-postgres", action="store_true", help="SQLite only")
    p.add_argument("--writer-procs", type=int, default=0, metavar="N",
                   help="latency phase of the outbox paths: N writer processes (default: "
                        "writer tasks in this process)")  # fmt: skip
    p.add_argument("--only", metavar="TEXT", help="only the paths whose label contains TEXT")
    p.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    args = p.parse_args(argv)
    if not args.no_postgres and pg_bin_dir() is None:
        p.error("PostgreSQL is not installed (apt-get install -y postgresql); or --no-postgres")
    logging.getLogger("tidings").setLevel(logging.ERROR)
    size = "smoke" if args.smoke else "quick" if args.quick else "full"
    if args.writer_procs < 0:
        p.error("--writer-procs must be >= 0")
    if args.rows_per_tx < 1:
        p.error("--rows-per-tx must be >= 1")
    res = asyncio.run(run(size, args.rate, not args.no_postgres, args.writer_procs, args.only,
                          args.rows_per_tx))  # fmt: skip
    print(json.dumps(res, indent=2) if args.json else report(res))
    return 0
