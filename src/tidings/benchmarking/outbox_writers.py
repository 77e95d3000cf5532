"""Writer processes for the latency phase of ``tidings bench outbox --writer-procs N``.

One asyncio process cannot commit 2,000 outbox transactions a second on a small machine (it is
CPU-bound), so the bench starts N of these. Process ``k`` of ``N`` writes messages
``k, k + N, k + 2N, ...`` below ``count``, message ``i`` due at ``t0 + i / rate`` (wall clock,
``time.time()``, shared by every process on the machine): a fixed schedule, so a slow commit
delays nothing but itself (no coordinated omission). Each due message goes to a small thread
pool that commits a business row and ``Outbox.publish`` in one plain SQLAlchemy transaction;
the commit's start (``time.time()`` just before ``COMMIT``) is what latency counts from. At the
end the process prints one JSON line on stdout: ``{"committed": {i: t}, "late_max_s": ...,
"cpu_s": ...}``.

Run as ``python -m tidings.benchmarking.outbox_writers --db URL --topic T --index k
--procs N --count C --rate R --t0 T0 [--rows-per-tx K]``; with K > 1 the processes write
transactions of K messages (transaction ``j`` carries messages ``jK .. jK + K - 1``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

THREADS = int(
    os.environ.get("TIDINGS_BENCH_WRITER_THREADS", "8")
)  # transactions under way at once per process (each holds a connection)
ROW_BASE = 1_000_000_000  # business-row ids, clear of the in-process phases' ids


def write(args: argparse.Namespace) -> dict[str, object]:
    import sqlalchemy as sa

    from ..outbox import Outbox

    engine = sa.create_engine(args.db, pool_size=THREADS + 2)
    outbox = Outbox(engine)
    insert = sa.text("INSERT INTO orders (id, total) VALUES (:i, 42)")
    committed: dict[int, float] = {}
    lock = threading.Lock()

    k = args.rows_per_tx

    def one(i: int) -> None:
        with engine.connect() as conn:
            conn.begin()
            conn.execute(insert, {"i": ROW_BASE + i})
            if k == 1:
                outbox.publish(conn, args.topic, {"i": i})
            else:
                outbox.publish_many(conn, args.topic, [{"i": n} for n in range(i, i + k)])
            t = time.time()
            conn.commit()
        with lock:
            committed.update(dict.fromkeys(range(i, i + k), t))

    late = 0.0
    with engine.connect():  # open a connection before the schedule starts
        pass
    with ThreadPoolExecutor(THREADS) as pool:
        futures = []
        for i in range(args.index * k, args.count, args.procs * k):
            due = args.t0 + i / args.rate
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            else:
                late = max(late, -delay)
            futures.append(pool.submit(one, i))
        for f in futures:
            f.result()
    engine.dispose()
    return {"committed": committed, "late_max_s": late, "cpu_s": time.process_time()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tidings.benchmarking.outbox_writers")
    p.add_argument("--db", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--index", type=int, required=True)
    p.add_argument("--procs", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--rate", type=float, required=True)
    p.add_argument("--t0", type=float, required=True)
    p.add_argument("--rows-per-tx", type=int, default=1)
    args = p.parse_args(argv)
    print(json.dumps(write(args)))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
