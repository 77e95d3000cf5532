"""Measure the storage choice: DiskStore against a SQLite-in-WAL-mode prototype of the same
Store interface, with MemoryStore as the ceiling. Every figure is the median of ``--runs``
runs; the output is a Markdown table (docs/design/storage.md quotes it).

    python -m tidings.benchmarking.micro.storage --runs 3

Throughput runs sync after every batch, as the broker's group commit does. Recovery opens a
store holding ``--recovery-records`` 1 KB records, after a crash (no clean close) and after a
clean close. ``--backlog N`` also reports the peak RSS of a process that opens a DiskStore with
N 1 KB records and reads all of them.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from ...model import Record, TopicSpec
from ...storage import DiskStore, MemoryStore
from .sqlite_store import SqliteStore

KINDS = ("memory", "disk", "sqlite")
TITLES = {"memory": "MemoryStore (ceiling)", "disk": "DiskStore", "sqlite": "SQLite WAL"}


AnyStore = MemoryStore | DiskStore | SqliteStore


def make(kind: str, path: str) -> AnyStore:
    if kind == "memory":
        return MemoryStore()
    return DiskStore(path) if kind == "disk" else SqliteStore(path)


def batch_of(start: int, count: int, size: int) -> list[Record]:
    body = os.urandom(size)
    now = time.time()
    return [Record(o, now, f"id-{o}", None, {}, body) for o in range(start, start + count)]


def fresh(kind: str, root: str) -> tuple[AnyStore, str]:
    path = tempfile.mkdtemp(dir=root)
    store = make(kind, path)
    store.open()
    store.put_topic(TopicSpec(name="t"))
    store.sync()
    return store, path


def timed(kind: str, root: str, work: Callable[[AnyStore], int]) -> float:
    """Items a second: ``work`` does its thing on a fresh store and says how many items."""
    store, path = fresh(kind, root)
    try:
        started = time.perf_counter()
        items = work(store)
        return items / (time.perf_counter() - started)
    finally:
        store.close()
        shutil.rmtree(path, ignore_errors=True)


def append_rate(kind: str, root: str, batch: int, batches: int, size: int = 256) -> float:
    prepared = [batch_of(i * batch, batch, size) for i in range(batches)]

    def work(store: AnyStore) -> int:
        for records in prepared:
            store.append("t", 0, records)
            store.sync()
        return batch * batches

    return timed(kind, root, work)


def ack_rate(kind: str, root: str, batch: int = 100, batches: int = 300) -> float:
    def work(store: AnyStore) -> int:
        for i in range(batches):
            store.save_acks("t", "g", 0, range(i * batch, (i + 1) * batch))
            store.sync()
        return batch * batches

    return timed(kind, root, work)


def read_rate(kind: str, root: str, count: int = 100_000, size: int = 256) -> float:
    store, path = fresh(kind, root)
    try:
        for start in range(0, count, 1000):
            store.append("t", 0, batch_of(start, 1000, size))
        store.sync()
        started = time.perf_counter()
        offset = 0
        while offset < count:
            offset += len(store.read("t", 0, offset, 100))
        return count / (time.perf_counter() - started)
    finally:
        store.close()
        shutil.rmtree(path, ignore_errors=True)


def fill(kind: str, path: str, count: int, size: int = 1024) -> int:
    store = make(kind, path)
    store.open()
    store.put_topic(TopicSpec(name="t"))
    for start in range(0, count, 1000):
        store.append("t", 0, batch_of(start, 1000, size))
    store.close()
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def open_seconds(kind: str, path: str, crashed: bool) -> float:
    store = make(kind, path)
    report = store.open()
    assert report.messages > 0, report
    if crashed and isinstance(store, DiskStore):  # kind "disk"
        store._release()  # leave it as a killed process does: the next open is unclean
    else:
        store.close()
    seconds: float = report.seconds
    return seconds


def rss_after_reading(path: str) -> float:
    """Peak RSS (MiB) of a fresh process that opens the DiskStore at ``path`` and reads it all."""
    code = (
        "import resource, sys\n"
        "from tidings.storage import DiskStore\n"
        "s = DiskStore(sys.argv[1]); s.open(); first, end = s.bounds('t', 0); o = first\n"
        "while o < end: o += len(s.read('t', 0, o, 1000))\n"
        "s.close(); print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, check=True)
    return float(out.stdout)


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--recovery-records", type=int, default=1_000_000)
    parser.add_argument("--backlog", type=int, default=0, help="records for the RSS check")
    parser.add_argument("--stores", default=",".join(KINDS), help="which, comma-separated")
    parser.add_argument("--dir", default=None, help="where to put the stores (default: tmp)")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="tidings-bench-", dir=args.dir)
    rows: dict[str, dict[str, str]] = {}
    try:
        runs = range(args.runs)
        kinds = [k for k in KINDS if k in args.stores.split(",")]
        for kind in kinds:
            col = rows.setdefault(kind, {})
            print(f"measuring {kind} ...", file=sys.stderr)
            col["append100"] = f"{median([append_rate(kind, root, 100, 300) for _ in runs]):,.0f}"
            col["append1"] = f"{median([append_rate(kind, root, 1, 2000) for _ in runs]):,.0f}"
            col["acks"] = f"{median([ack_rate(kind, root) for _ in runs]):,.0f}"
            col["read"] = f"{median([read_rate(kind, root) for _ in runs]):,.0f}"
            if kind == "memory":
                col["crash"] = col["clean"] = col["bytes"] = "n/a"
                continue
            path = os.path.join(root, f"recovery-{kind}")
            started = time.perf_counter()
            col["bytes"] = f"{fill(kind, path, args.recovery_records) / 2**20:,.0f} MiB"
            col["fill"] = f"{time.perf_counter() - started:.1f} s"
            col["clean"] = f"{median([open_seconds(kind, path, False) for _ in runs]):.3f}"
            if kind == "disk":
                open_seconds(kind, path, True)  # leaves it unclean
                col["crash"] = f"{median([open_seconds(kind, path, True) for _ in runs]):.3f}"
                if not args.backlog:
                    col["rss"] = f"{rss_after_reading(path):.0f} MiB"
            else:
                col["crash"] = col["clean"]  # WAL recovery: the same open
            shutil.rmtree(path, ignore_errors=True)
        if args.backlog:
            path = os.path.join(root, "backlog")
            fill("disk", path, args.backlog)
            rss = rss_after_reading(path)
            rows.setdefault("disk", {})["rss"] = f"{rss:.0f} MiB ({args.backlog:,} x 1 KB)"
            shutil.rmtree(path, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    n = f"{args.recovery_records:,}"
    labels = {
        "append100": "append, batches of 100 x 256 B, sync per batch (records/s)",
        "append1": "append, 1 x 256 B, sync per append (records/s = commits/s)",
        "acks": "save_acks, batches of 100, sync per batch (acks/s)",
        "read": "read 100,000 x 256 B, 100 per call (records/s)",
        "clean": f"open after clean close, {n} x 1 KB (s)",
        "crash": f"open after a crash, {n} x 1 KB (s)",
        "fill": f"writing the {n} x 1 KB (s, batches of 1,000)",
        "bytes": f"on disk for {n} x 1 KB",
        "rss": "peak RSS, open + read everything",
    }
    print(f"\nPython {platform.python_version()}, {os.cpu_count()} cores, runs={args.runs}\n")
    print("| measure | " + " | ".join(TITLES[k] for k in kinds) + " |")
    print("|---|" + "---:|" * len(kinds))
    for key, label in labels.items():
        print(f"| {label} | " + " | ".join(rows[k].get(key, "n/a") for k in kinds) + " |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"\npeak RSS of the benchmark process itself: {peak} MiB")


if __name__ == "__main__":
    main()
