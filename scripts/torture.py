"""Crash torture, long form: SIGKILL a broker under load many times, then check invariants.

    python scripts/torture.py --kills 200 --fsync batch --seed 7

The workload and the invariants are those of tests/reliability/torture.py (the bounded test
runs 20 kills). Exit code 0 when every invariant holds, 1 otherwise; the data directory is
kept for inspection with ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.reliability.torture import Torture, TortureConfig, check  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kills", type=int, default=200)
    p.add_argument("--fsync", choices=["batch", "interval", "never"], default="batch")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--min-up", type=float, default=0.3, help="seconds between kills, at least")
    p.add_argument("--max-up", type=float, default=2.5, help="seconds between kills, at most")
    p.add_argument("--publishers", type=int, default=2, help="per topic")
    p.add_argument("--consumers", type=int, default=2, help="per group")
    p.add_argument("--data", type=Path, default=None, help="data directory (default: a temp one)")
    p.add_argument("--keep", action="store_true", help="keep the data directory")
    args = p.parse_args(argv)
    data = args.data or Path(tempfile.mkdtemp(prefix="tidings-torture-")) / "data"
    config = TortureConfig(
        data,
        kills=args.kills,
        min_up=args.min_up,
        max_up=args.max_up,
        fsync=args.fsync,
        seed=args.seed,
        job_publishers=args.publishers,
        event_publishers=args.publishers,
        workers=args.consumers,
        ordered_members=args.consumers,
    )
    print(f"torture: {args.kills} kills, fsync={args.fsync}, data in {data}", flush=True)
    ledger = asyncio.run(Torture(config).run())
    problems = check(ledger, config.commit_window)
    print(ledger.summary())
    for line in ledger.truncations:
        print("recovery:", line)
    for problem in problems:
        print("VIOLATION:", problem)
    if not args.keep and args.data is None:
        shutil.rmtree(data.parent, ignore_errors=True)
    print("OK: every invariant held" if not problems else f"{len(problems)} invariants violated")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
