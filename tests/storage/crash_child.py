"""The child of the kill -9 test: appends, acks and trims on the main thread while a flusher
thread syncs, and prints "<next offset> <ack floor>" only after a sync that began when those
were already written. The parent kills it at a random moment and checks the store."""

from __future__ import annotations

import random
import sys
import threading

from storage_helpers import crash_record

from tidings.model import GroupSpec, TopicSpec
from tidings.storage import DiskStore

KEEP = 2000  # records kept below the confirmed offset (trimmed further down)


def main(path: str, seed: int) -> None:
    rng = random.Random(seed)
    store = DiskStore(path, segment_bytes=64 * 1024, journal_compact=500)
    store.open()
    if not store.topics():
        store.put_topic(TopicSpec(name="t"))
        store.put_group(GroupSpec(topic="t", name="g"))
        store.sync()
    state = {"next": store.bounds("t", 0)[1], "floor": 0, "confirmed": 0}
    cursor = store.load_cursors("t", "g").get(0)
    state["floor"] = cursor.floor if cursor else 0

    def flusher() -> None:
        while True:
            written = (state["next"], state["floor"])
            store.sync()
            state["confirmed"] = written[0]
            sys.stdout.write(f"{written[0]} {written[1]}\n")
            sys.stdout.flush()

    print("ready", flush=True)
    threading.Thread(target=flusher, daemon=True).start()
    while True:
        start = state["next"]
        count = rng.randint(1, 40)
        store.append("t", 0, [crash_record(o) for o in range(start, start + count)])
        state["next"] = start + count
        floor = state["floor"]
        acks = list(range(floor, max(floor, start - 300)))
        rng.shuffle(acks)
        store.save_acks("t", "g", 0, acks)
        state["floor"] = max(floor, start - 300)
        store.trim("t", 0, state["confirmed"] - KEEP)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
