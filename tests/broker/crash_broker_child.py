"""The child of the broker kill -9 test: publishes (with producer message ids) and acks on a
Broker over a DiskStore with confirm_after_sync=True, calling ``broker.sync()`` now and then.
Only after a sync it prints what that sync covered:

    P <seq> <partition> <offset>    a publish of message <seq> confirmed at that position
    A <partition> <offset>          an ack of group "g" made durable
    a <partition> <offset>          an ack about to be made (it may or may not survive)

The parent SIGKILLs it at a random moment and checks the directory."""

from __future__ import annotations

import random
import sys

from tidings.broker import Broker
from tidings.model import Delivery, GroupSpec, Outgoing, TopicSpec
from tidings.storage import DiskStore

PARTITIONS = 2
GROUP = GroupSpec(topic="t", name="g", lease=300)


def body(seq: int) -> bytes:
    return (b"body-%d;" % seq) * (1 + seq % 17)


def main(path: str, seed: int, start: int) -> None:
    rng = random.Random(seed)
    store = DiskStore(path, segment_bytes=64 * 1024, journal_compact=300)
    broker = Broker(store, confirm_after_sync=True)
    broker.open()
    broker.create_topic(TopicSpec(name="t", partitions=PARTITIONS), exist_ok=True)
    inbox: list[Delivery] = []
    member = broker.join(GROUP, prefetch=64, deliver=inbox.extend)
    broker.sync()
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    seq = start
    published: list[str] = []
    acked: list[str] = []
    while True:
        n = rng.randint(1, 8)
        batch = [
            Outgoing(body(s), key=rng.choice([None, "a", "b", "c"]), msg_id=f"m{s}")
            for s in range(seq, seq + n)
        ]
        for s, r in zip(range(seq, seq + n), broker.publish("t", batch), strict=True):
            published.append(f"P {s} {r.partition} {r.offset}\n")
        seq += n
        chosen = [d for d in inbox if rng.random() < 0.6]
        inbox[:] = [d for d in inbox if d not in chosen]
        # An ack written but not yet synced may survive a kill (the page cache keeps it), so
        # the parent hears of every ack before it is made, and again once it is synced.
        out.write("".join(f"a {d.partition} {d.offset}\n" for d in chosen))
        out.flush()
        for d in chosen:
            broker.ack(member, d.partition, d.offset)
            acked.append(f"A {d.partition} {d.offset}\n")
        if rng.random() < 0.4:
            broker.sync()  # covers every publish and ack above
            out.write("".join(published) + "".join(acked))
            out.flush()
            published.clear()
            acked.clear()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
