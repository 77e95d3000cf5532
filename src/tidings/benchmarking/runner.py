"""The benchmark runner: ``tidings bench`` / ``python -m tidings.benchmarking`` / ``main(argv)``.

For each repeat and each engine: start its server (free loopback ports, a temporary data
directory), run the selected workloads (each bounded by the profile's timeout), stop the server
by PID and delete its data. Then print the Markdown report (medians over repeats, the ratio of
tidings to each peer, the targets) or, with ``--json``, the raw results.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any

from .engines import ENGINES, Engine
from .profiles import FULL, MODERATE, PROFILES, QUICK, SMOKE, Profile
from .report import Results, markdown
from .workloads import WORKLOADS, Context

DEFAULT_ENGINES = ["tidings", "tidings-svc", "rabbitmq", "rabbitmq-quorum", "nats", "redis"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tidings bench",
        description="Benchmark tidings against RabbitMQ, NATS JetStream and Redis Streams on "
        "this machine (servers started on 127.0.0.1, data in a temporary directory).",
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small counts: under 3 minutes")
    size.add_argument(
        "--moderate", action="store_true", help="medium counts, 3 repeats: some minutes"
    )
    size.add_argument("--smoke", action="store_true", help="tiny counts (CI): under 60 s")
    p.add_argument("--engines", default=",".join(DEFAULT_ENGINES), help="comma-separated")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated")
    p.add_argument("--repeat", type=int, default=None, help="runs per engine (median reported)")
    p.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    p.add_argument("--output", type=Path, default=None, help="also write the report here")
    p.add_argument(
        "--skip-missing",
        action="store_true",
        help="leave out engines whose server or client is not installed (default with --smoke)",
    )
    return p


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _select(names: str, known: Mapping[str, object], what: str) -> list[str]:
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (choose from {', '.join(known)})")
    return chosen


def _settle_gc() -> None:
    """Collect the harness's garbage from earlier workloads and freeze what survives, so the
    collector does not rescan it during the next measurement (the same for every engine: a
    full collection of this process took ~20 ms, a latency spike that belonged to no broker)."""
    gc.collect()
    gc.freeze()


async def _run_engine(
    engine: Engine,
    profile: Profile,
    workloads: list[str],
    results: Results,
    errors: dict[str, dict[str, str]],
) -> None:
    ctx = Context(engine, profile)
    for name in workloads:
        _settle_gc()
        t0 = time.perf_counter()
        try:
            values = await asyncio.wait_for(WORKLOADS[name](ctx), profile.timeout)
        except Exception as exc:  # one failed workload must not hide the others
            message = f"{type(exc).__name__}: {exc}".strip()[:300]
            errors.setdefault(engine.name, {})[name] = message
            _log(f"  {engine.name} {name}: FAILED {message}")
            if os.environ.get("TIDINGS_BENCH_DEBUG"):
                traceback.print_exc()
            continue
        for metric, value in values.items():
            results.setdefault(engine.name, {}).setdefault(metric, []).append(value)
        summary = ", ".join(f"{k}={v:,.1f}" for k, v in values.items())
        _log(f"  {engine.name} {name} ({time.perf_counter() - t0:.1f}s): {summary}")


def run(
    profile: Profile, engines: list[str], workloads: list[str], repeat: int
) -> tuple[Results, dict[str, dict[str, str]], dict[str, str]]:
    results: Results = {}
    errors: dict[str, dict[str, str]] = {}
    versions: dict[str, str] = {}
    for r in range(repeat):
        for name in engines:
            cls = ENGINES[name]
            workdir = Path(tempfile.mkdtemp(prefix=f"tidings-bench-{name}-"))
            engine = cls(workdir)
            _log(f"[{r + 1}/{repeat}] {name}: starting the server in {workdir}")
            try:
                t0 = time.perf_counter()
                engine.start()
                _log(f"  started in {time.perf_counter() - t0:.1f}s")
                versions.setdefault(name, engine.version())
                _event_loop_run(_run_engine(engine, profile, workloads, results, errors))
            except Exception as exc:
                errors.setdefault(name, {})["server"] = f"{type(exc).__name__}: {exc}"[:300]
                _log(f"  {name}: FAILED {exc}")
            finally:
                engine.shutdown()
                shutil.rmtree(workdir, ignore_errors=True)
    return results, errors, versions


def _event_loop_run(coro: Coroutine[Any, Any, object]) -> None:
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:
        asyncio.run(coro)


def header(profile: Profile, repeat: int, versions: dict[str, str]) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## tidings bench — {profile.name} mode, median of {repeat} run(s), {now}",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.platform()}, Python "
        f"{platform.python_version()}.",
        "",
    ]
    lines += [f"- {name}: {v}" for name, v in versions.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    profile = SMOKE if args.smoke else QUICK if args.quick else MODERATE if args.moderate else FULL
    profile = PROFILES[profile.name]
    engines = _select(args.engines, ENGINES, "engine")
    workloads = _select(args.workloads, WORKLOADS, "workload")
    missing = {e: why for e in engines if (why := ENGINES[e].available())}
    if missing and (args.skip_missing or args.smoke):
        for e, why in missing.items():
            _log(f"skipping {e}: {why}")
        engines = [e for e in engines if e not in missing]
    elif missing:
        for e, why in missing.items():
            _log(f"{e}: {why}")
        _log("run scripts/bench-setup.sh, pick --engines, or pass --skip-missing")
        return 2
    repeat = args.repeat or profile.repeat
    t0 = time.perf_counter()
    results, errors, versions = run(profile, engines, workloads, repeat)
    _log(f"done in {time.perf_counter() - t0:.0f}s")
    if args.json:
        text = json.dumps(
            {
                "profile": profile.name,
                "repeat": repeat,
                "engines": engines,
                "versions": versions,
                "results": results,
                "errors": errors,
            },
            indent=2,
        )
    else:
        text = markdown(
            results, engines, errors, header(profile, repeat, versions), profile is not SMOKE
        )
    print(text)
    if args.output is not None:
        args.output.write_text(text + "\n")
    return 1 if errors else 0
