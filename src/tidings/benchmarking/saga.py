"""``tidings bench saga``: sagas/s and end-to-end latency of a three-step saga.

Through the public API only: a ``tidings.Saga`` of three steps (each a command to a
participant and its reply), a ``tidings.Orchestrator`` in one service and a
``tidings.Participant`` with the three handlers in another, each service on its own database
with its outbox and a polling ``Relay``, over a tidings:// broker process the run starts.

1. **Latency**: sagas started one at a time, each waited for (start to ``completed`` in the
   saga row); p50/p99.
2. **Throughput**: a burst of sagas started at once; completed sagas/s from the first start
   to the last completion, and the p50/p99 of each saga's start-to-completion under that load.

On SQLite (both databases) and, with ``--postgres``, on a PostgreSQL cluster the run starts.
Options: ``--quick``, ``--smoke`` (tiny counts, for the test suite), ``--postgres``, ``--json``.
Every wait has a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .outbox import _broker
from .postgres import Postgres, pg_bin_dir
from .stats import percentile

SIZES = {
    "smoke": {"latency": 5, "burst": 20},
    "quick": {"latency": 30, "burst": 200},
    "full": {"latency": 100, "burst": 1000},
}


def _app(prefix: str, orders_db: str, shop_db: str, broker: str) -> tuple[Any, ...]:
    import sqlalchemy as sa

    import tidings
    from tidings.outbox import Outbox, Relay

    def command(step: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        return lambda state: {"order": state["order"], "step": step}

    saga = tidings.Saga(f"{prefix}-bench", timeout=60)
    for step in ("reserve", "charge", "ship"):
        saga.step(command=f"{prefix}.{step}", compensate=f"{prefix}.undo-{step}", name=step)(
            command(step)
        )
    outboxes = Outbox(sa.create_engine(orders_db)), Outbox(sa.create_engine(shop_db))
    orders = tidings.Service(f"{prefix}-orders", broker, register=False, outbox=outboxes[0])
    orchestrator = tidings.Orchestrator(orders, [saga], concurrency=32)
    shop = tidings.Service(f"{prefix}-shop", broker, register=False, outbox=outboxes[1])
    participant = tidings.Participant(shop)
    for step in ("reserve", "charge", "ship"):

        @participant.command(f"{prefix}.{step}", concurrency=16)
        async def do(cmd: dict[str, Any]) -> dict[str, Any]:
            return {"ok": cmd["step"]}

        @participant.compensation(f"{prefix}.undo-{step}", concurrency=4)
        async def undo(cmd: dict[str, Any]) -> None: ...

    relays = [Relay(outbox, broker, max_interval=0.02) for outbox in outboxes]
    return saga, orchestrator, orders, shop, relays


def _times(orchestrator: Any, ids: list[str]) -> list[float]:
    """Seconds from start to completion of each completed saga (from the saga rows)."""
    engine = orchestrator._engine()
    t = orchestrator.store.sagas
    import sqlalchemy as sa

    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.c.created_at, t.c.updated_at).where(t.c.id.in_(ids),
                                                            t.c.status == "completed")
        ).all()  # fmt: skip
    return sorted(u - c for c, u in rows)


async def _count_done(orchestrator: Any, ids: list[str], timeout: float) -> float:
    """Wait until every saga of ``ids`` ended; the time the last one did (perf counter)."""
    import sqlalchemy as sa

    engine = orchestrator._engine()
    t = orchestrator.store.sagas
    deadline = time.perf_counter() + timeout

    def ended() -> int:
        with engine.connect() as conn:
            query = sa.select(sa.func.count()).where(
                t.c.id.in_(ids), t.c.status.in_(("completed", "compensated", "failed"))
            )
            return conn.execute(query).scalar() or 0

    while await asyncio.to_thread(ended) < len(ids):
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{len(ids)} sagas did not end within {timeout:.0f}s")
        await asyncio.sleep(0.02)
    return time.perf_counter()


def _ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50_ms": float("nan"), "p99_ms": float("nan")}
    return {"p50_ms": percentile(values, 50) * 1000, "p99_ms": percentile(values, 99) * 1000}


async def run_db(
    db: str, size: str, broker: str, workdir: Path, pg: Postgres | None
) -> dict[str, Any]:
    sz = SIZES[size]
    prefix = f"b{secrets.token_hex(3)}"
    if pg is not None:
        orders_db = pg.create_database(f"{prefix}_orders")
        shop_db = pg.create_database(f"{prefix}_shop")
    else:
        orders_db, shop_db = (f"sqlite:///{workdir / prefix}-{n}.db" for n in ("orders", "shop"))
    saga, orchestrator, orders, shop, relays = _app(prefix, orders_db, shop_db, broker)
    async with contextlib.AsyncExitStack() as stack:
        for part in (orders, shop, *relays):
            await stack.enter_async_context(part.running())
        await orchestrator.wait(await orchestrator.start(saga, {"order": "warm-up"}), 60)
        lat_ids = []
        for i in range(sz["latency"]):
            saga_id = await orchestrator.start(saga, {"order": f"l{i}"})
            await orchestrator.wait(saga_id, 60)
            lat_ids.append(saga_id)
        latency = _times(orchestrator, lat_ids)
        t0 = time.perf_counter()
        burst = await asyncio.gather(
            *(orchestrator.start(saga, {"order": f"b{i}"}) for i in range(sz["burst"]))
        )
        t1 = await _count_done(orchestrator, list(burst), 60 + sz["burst"] / 5)
        loaded = _times(orchestrator, list(burst))
    return {
        "database": db,
        "latency": {"sagas": len(latency), **_ms(latency)},
        "burst": {"sagas": len(burst), "completed": len(loaded),
                  "sagas_per_s": len(burst) / (t1 - t0), **_ms(loaded)},
    }  # fmt: skip


async def run(size: str, postgres: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tidings-bench-saga-") as tmp:
        workdir = Path(tmp)
        proc, broker = _broker(workdir)
        pg = Postgres().start() if postgres else None
        try:
            out = {
                "size": size,
                "steps": 3,
                "sqlite": await run_db("sqlite", size, broker, workdir, None),
            }
            if pg is not None:
                out["postgresql"] = await run_db("postgresql", size, broker, workdir, pg)
            return out
        finally:
            if pg is not None:
                pg.stop()
            proc.stop()


def report(res: dict[str, Any]) -> str:
    lines = [
        f"Three-step saga ({res['size']}): latency one at a time, then a burst",
        "",
        "| database | one at a time p50 | p99 | burst | sagas/s | burst p50 | p99 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for db in ("sqlite", "postgresql"):
        if db not in res:
            continue
        r = res[db]
        lat, burst = r["latency"], r["burst"]
        lines.append(
            f"| {db} | {lat['p50_ms']:.1f} ms | {lat['p99_ms']:.1f} ms | {burst['sagas']} | "
            f"{burst['sagas_per_s']:.1f} | {burst['p50_ms']:.0f} ms | {burst['p99_ms']:.0f} ms |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tidings bench saga", description=__doc__.split("\n")[0])
    sizes = p.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="smaller counts")
    sizes.add_argument("--smoke", action="store_true", help="tiny counts (the test suite)")
    p.add_argument("--postgres", action="store_true", help="also on a PostgreSQL cluster")
    p.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    args = p.parse_args(argv)
    if args.postgres and pg_bin_dir() is None:
        p.error("PostgreSQL is not installed (apt-get install -y postgresql); drop --postgres")
    logging.getLogger("tidings").setLevel(logging.ERROR)
    size = "smoke" if args.smoke else "quick" if args.quick else "full"
    res = asyncio.run(run(size, args.postgres))
    print(json.dumps(res, indent=2) if args.json else report(res))
    return 0
