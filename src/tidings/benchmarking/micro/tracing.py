"""Micro-benchmark of message tracing's cost in the broker engine's own loop, on a
MemoryStore, with tracing off and with every topic traced (``--trace '>'``, a ring of 100,000
events), run after run alternately so that both see the same machine load:

- ``publish``: batches of 100 256-byte messages published (what ``publish.single`` asks of
  the engine: the client coalesces the publishes of a loop turn into one batch);
- ``publish+deliver+ack``: batches of 500 published, delivered to one member and acked one
  by one (three events per message).

Run: ``python -m tidings.benchmarking.micro.tracing [--messages 100000] [--runs 3]``.
Prints msg/s (CPU time of the loop, not wall time) per mode and run, the medians and the cost
of tracing in percent. ``--profile`` runs the traced loop once under cProfile.
"""

from __future__ import annotations

import argparse
import statistics
import time

from ...broker import Broker
from ...broker.tracing import Tracer
from ...model import Delivery, GroupSpec, Outgoing, TopicSpec
from ...storage import MemoryStore

BODY = b"x" * 256
BATCH = 500


def publish_loop(messages: int, traced: bool) -> float:
    """msg/s of publishes of 100 through one engine, no consumer (CPU time)."""
    broker = Broker(MemoryStore())
    broker.open()
    if traced:
        broker.set_tracer(Tracer(size=100_000))
    broker.create_topic(TopicSpec(name="orders"))
    batch = [Outgoing(BODY) for _ in range(100)]
    publish = broker.publish
    start = time.process_time()
    for _ in range(messages // 100):
        publish("orders", batch)
    elapsed = time.process_time() - start
    broker.close()
    return (messages // 100) * 100 / elapsed


def engine_loop(messages: int, traced: bool) -> float:
    """msg/s of publish-deliver-ack through one engine (CPU time, not wall time)."""
    broker = Broker(MemoryStore())
    broker.open()
    if traced:
        broker.set_tracer(Tracer(size=100_000))
    broker.create_topic(TopicSpec(name="orders"))
    inbox: list[Delivery] = []
    member = broker.join(GroupSpec(topic="orders", name="billing"), prefetch=BATCH * 2,
                         deliver=inbox.extend)  # fmt: skip
    batch = [Outgoing(BODY, key=f"k{i % 64}") for i in range(BATCH)]
    publish, ack = broker.publish, broker.ack
    done = 0
    start = time.process_time()
    while done < messages:
        publish("orders", batch)
        got = inbox[:]
        inbox.clear()
        for d in got:
            ack(member, d.partition, d.offset)
        done += len(got)
    elapsed = time.process_time() - start
    broker.close()
    return done / elapsed


LOOPS = {"publish": publish_loop, "publish+deliver+ack": engine_loop}
Rates = dict[str, dict[str, list[float]]]


def compare(messages: int, runs: int) -> Rates:
    """Each loop in both modes, ``runs`` times, alternating (off first), after a warm-up."""
    rates: Rates = {}
    for name, loop in LOOPS.items():
        loop(messages // 10, False)
        loop(messages // 10, True)
        got = rates[name] = {"off": [], "on": []}
        for _ in range(runs):
            got["off"].append(loop(messages, False))
            got["on"].append(loop(messages, True))
    return rates


def report(rates: Rates) -> str:
    lines = [f"{'loop':<21}{'tracing':<13}{'median msg/s':>13}   runs"]
    for name, got in rates.items():
        off, on = statistics.median(got["off"]), statistics.median(got["on"])
        for mode, key, median in (("off", "off", off), ("--trace '>'", "on", on)):
            runs = ", ".join(f"{r:,.0f}" for r in got[key])
            lines.append(f"{name:<21}{mode:<13}{median:>13,.0f}   {runs}")
        lines.append(f"{name:<21}{'cost':<13}{100 * (1 - on / off):>12.1f}%")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--profile", action="store_true", help="profile the traced loop once")
    args = p.parse_args(argv)
    if args.messages < BATCH or args.runs < 1:
        p.error(f"--messages must be at least {BATCH} and --runs at least 1")
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(engine_loop, args.messages, True)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
        return
    print(report(compare(args.messages, args.runs)))


if __name__ == "__main__":
    main()
