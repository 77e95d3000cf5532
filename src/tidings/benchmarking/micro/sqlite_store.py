"""A SQLite (WAL mode) prototype of the Store interface, only to measure the storage choice
(:mod:`tidings.benchmarking.micro.storage`); it is no Store tidings offers.

Group commit the SQLite way: appends and acks run inside one open transaction on the
event-loop thread; ``sync`` (the flusher thread) commits it with ``synchronous=FULL``, which
fsyncs the WAL, and opens the next one. One connection is shared under a lock, so appends wait
while a commit fsyncs. Each partition is a table keyed by offset (the rowid, the fastest layout
SQLite has), a record its msgpack encoding in one row.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Sequence

import msgspec

from ...errors import NotFound, StorageError
from ...model import GroupSpec, Record, TopicSpec
from ...storage import GroupCursor, RecoveryReport

SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (name TEXT PRIMARY KEY, spec BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS groups (
    topic TEXT, name TEXT, spec BLOB NOT NULL, PRIMARY KEY (topic, name));
CREATE TABLE IF NOT EXISTS acks (
    topic TEXT, grp TEXT, part INTEGER, off INTEGER,
    PRIMARY KEY (topic, grp, part, off)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS floors (
    topic TEXT, grp TEXT, part INTEGER, floor INTEGER,
    PRIMARY KEY (topic, grp, part)) WITHOUT ROWID;
"""

_encode = msgspec.msgpack.Encoder().encode


def _table(topic: str, partition: int) -> str:
    """The table holding one partition: rowid = offset."""
    return f"log_{topic.encode().hex()}_{partition}"


_decode = msgspec.msgpack.Decoder(Record).decode


class SqliteStore:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._topics: dict[str, TopicSpec] = {}
        self._next: dict[tuple[str, int], int] = {}

    def open(self) -> RecoveryReport:
        started = time.perf_counter()
        os.makedirs(self.path, exist_ok=True)
        db = sqlite3.connect(
            os.path.join(self.path, "store.db"), isolation_level=None, check_same_thread=False
        )
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(SCHEMA)
        self._db = db
        messages = 0
        for name, spec in db.execute("SELECT name, spec FROM topics"):
            self._topics[name] = msgspec.msgpack.decode(spec, type=TopicSpec)
            for p in range(self._topics[name].partitions):
                first, last = db.execute(
                    f"SELECT min(off), max(off) FROM {_table(name, p)}"
                ).fetchone()
                self._next[(name, p)] = 0 if last is None else last + 1
                messages += 0 if last is None else last + 1 - first
        db.execute("BEGIN")
        return RecoveryReport(
            topics=len(self._topics), messages=messages, seconds=time.perf_counter() - started
        )

    def close(self) -> None:
        if self._db is not None:
            self.sync()
            with self._lock:
                self._db.execute("COMMIT")
                self._db.close()
                self._db = None

    def sync(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.execute("COMMIT")
                self._db.execute("BEGIN")

    def _open_db(self) -> sqlite3.Connection:
        db = self._db
        if db is None:
            raise StorageError(f"the SQLite store at {self.path} is not open")
        return db

    def _exec(self, sql: str, args: tuple[object, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._open_db().execute(sql, args)

    # catalogue
    def put_topic(self, spec: TopicSpec) -> None:
        self._exec(
            "INSERT OR REPLACE INTO topics VALUES (?, ?)", (spec.name, msgspec.msgpack.encode(spec))
        )
        self._topics[spec.name] = spec
        for p in range(spec.partitions):
            self._exec(
                f"CREATE TABLE IF NOT EXISTS {_table(spec.name, p)} "
                "(off INTEGER PRIMARY KEY, ts REAL NOT NULL, data BLOB NOT NULL)"
            )
            self._next.setdefault((spec.name, p), 0)

    def drop_topic(self, name: str) -> None:
        for p in range(self._topics[name].partitions if name in self._topics else 0):
            self._exec(f"DROP TABLE IF EXISTS {_table(name, p)}")
        self._exec("DELETE FROM topics WHERE name=?", (name,))
        self._exec("DELETE FROM groups WHERE topic=?", (name,))
        self._exec("DELETE FROM acks WHERE topic=?", (name,))
        self._exec("DELETE FROM floors WHERE topic=?", (name,))
        self._topics.pop(name, None)
        for key in [k for k in self._next if k[0] == name]:
            del self._next[key]

    def topics(self) -> list[TopicSpec]:
        return list(self._topics.values())

    def put_group(self, spec: GroupSpec) -> None:
        self._exec(
            "INSERT OR REPLACE INTO groups VALUES (?, ?, ?)",
            (spec.topic, spec.name, msgspec.msgpack.encode(spec)),
        )

    def drop_group(self, topic: str, group: str) -> None:
        self._exec("DELETE FROM groups WHERE topic=? AND name=?", (topic, group))
        self._exec("DELETE FROM acks WHERE topic=? AND grp=?", (topic, group))
        self._exec("DELETE FROM floors WHERE topic=? AND grp=?", (topic, group))

    def groups(self, topic: str) -> list[GroupSpec]:
        rows = self._exec("SELECT spec FROM groups WHERE topic=?", (topic,)).fetchall()
        return [msgspec.msgpack.decode(r[0], type=GroupSpec) for r in rows]

    # log
    def _check(self, topic: str, partition: int) -> str:
        if (topic, partition) not in self._next:
            raise NotFound(f"topic {topic!r} has no partition {partition}")
        return _table(topic, partition)

    def append(self, topic: str, partition: int, records: Sequence[Record]) -> None:
        table = self._check(topic, partition)
        expected = self._next[(topic, partition)]
        rows = []
        for r in records:
            if r.offset != expected:
                raise StorageError(f"append out of order: {r.offset}, expected {expected}")
            rows.append((r.offset, r.timestamp, _encode(r)))
            expected += 1
        with self._lock:
            self._open_db().executemany(f"INSERT INTO {table} VALUES (?, ?, ?)", rows)
        self._next[(topic, partition)] = expected

    def read(
        self, topic: str, partition: int, offset: int, max_count: int, max_bytes: int = 1 << 20
    ) -> list[Record]:
        table = self._check(topic, partition)
        rows = self._exec(
            f"SELECT data FROM {table} WHERE off>=? ORDER BY off LIMIT ?", (offset, max_count)
        ).fetchall()
        out: list[Record] = []
        used = 0
        for (data,) in rows:
            if out and used + len(data) > max_bytes:
                break
            out.append(_decode(data))
            used += len(data)
        return out

    def bounds(self, topic: str, partition: int) -> tuple[int, int]:
        table = self._check(topic, partition)
        end = self._next[(topic, partition)]
        (first,) = self._exec(f"SELECT min(off) FROM {table}").fetchone()
        return (end if first is None else first), end

    def size(self, topic: str, partition: int) -> int:
        table = self._check(topic, partition)
        (size,) = self._exec(f"SELECT coalesce(sum(length(data)), 0) FROM {table}").fetchone()
        total: int = size
        return total

    def trim(self, topic: str, partition: int, before: int) -> None:
        table = self._check(topic, partition)
        self._exec(f"DELETE FROM {table} WHERE off<?", (before,))

    def offset_at(self, topic: str, partition: int, timestamp: float) -> int:
        table = self._check(topic, partition)
        (off,) = self._exec(f"SELECT min(off) FROM {table} WHERE ts>=?", (timestamp,)).fetchone()
        return self._next[(topic, partition)] if off is None else off

    # group state
    def save_acks(self, topic: str, group: str, partition: int, offsets: Sequence[int]) -> None:
        with self._lock:
            db = self._open_db()
            db.executemany(
                "INSERT OR IGNORE INTO acks VALUES (?, ?, ?, ?)",
                [(topic, group, partition, o) for o in offsets],
            )
            db.execute(
                "INSERT OR IGNORE INTO floors VALUES (?, ?, ?, 0)", (topic, group, partition)
            )

    def save_floor(self, topic: str, group: str, partition: int, floor: int) -> None:
        with self._lock:
            db = self._open_db()
            db.execute(
                "INSERT OR REPLACE INTO floors VALUES (?, ?, ?, ?)",
                (topic, group, partition, floor),
            )
            db.execute(
                "DELETE FROM acks WHERE topic=? AND grp=? AND part=? AND off<?",
                (topic, group, partition, floor),
            )

    def load_cursors(self, topic: str, group: str) -> dict[int, GroupCursor]:
        floors = self._exec(
            "SELECT part, floor FROM floors WHERE topic=? AND grp=?", (topic, group)
        ).fetchall()
        out = {}
        for part, floor in floors:
            acked = self._exec(
                "SELECT off FROM acks WHERE topic=? AND grp=? AND part=? AND off>=?",
                (topic, group, part, floor),
            ).fetchall()
            out[part] = GroupCursor(floor, {a for (a,) in acked})
        return out
