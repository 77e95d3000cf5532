"""The persisted trace ring's files: rows come back in order with the consumers they name,
segments rotate every ``segment_events`` events and the oldest are deleted once the newer ones
hold ``keep`` events (bounded on disk), a frame torn by a kill ends its segment without losing
the frames before it, and files that are not trace segments are left out."""

from __future__ import annotations

from tidings.storage.tracelog import FRAME, SUFFIX, TraceLog


def rows(first: int, n: int) -> list[tuple]:
    return [(s, 1.5, "acked", "t", 0, s, f"id{s}", "g", "m1", 1, None, None, None, None)
            for s in range(first, first + n)]  # fmt: skip


def one(row: tuple) -> int:
    return 1


def test_rows_and_consumers_come_back_in_order(tmp_path) -> None:
    log = TraceLog(tmp_path, keep=1000, count=one)
    log.load()
    log.append(rows(1, 3), {"m1": "connection 1"})
    log.append(rows(4, 2), {})
    log.close()
    again = TraceLog(tmp_path, keep=1000, count=one)
    got, consumers = again.load()
    assert got == rows(1, 5) and consumers == {"m1": "connection 1"}


def test_segments_rotate_and_stay_bounded(tmp_path) -> None:
    log = TraceLog(tmp_path, keep=50, count=one, segment_events=10)
    log.load()
    for first in range(1, 401, 5):
        log.append(rows(first, 5), {})
    log.close()
    files = sorted(tmp_path.glob(f"*{SUFFIX}"))
    assert len(files) <= 50 // 10 + 2
    got, _ = TraceLog(tmp_path, keep=50, count=one).load()
    assert got[-1][0] == 400 and len(got) >= 50  # the newest, at least ``keep`` of them
    assert [r[0] for r in got] == list(range(got[0][0], 401))
    assert files[0].name == f"{got[0][0]:020d}{SUFFIX}"


def test_a_torn_frame_ends_its_segment(tmp_path) -> None:
    log = TraceLog(tmp_path, keep=1000, count=one)
    log.load()
    log.append(rows(1, 4), {})
    log.append(rows(5, 4), {})
    log.close()
    [path] = tmp_path.glob(f"*{SUFFIX}")
    data = path.read_bytes()
    path.write_bytes(data[:-7])  # the second frame cut short
    got, _ = TraceLog(tmp_path, keep=1000, count=one).load()
    assert got == rows(1, 4)
    damaged = bytearray(data)
    damaged[-3] ^= 0xFF  # a flipped byte fails the checksum
    path.write_bytes(bytes(damaged))
    assert TraceLog(tmp_path, keep=1000, count=one).load()[0] == rows(1, 4)
    assert FRAME.size == 8


def test_other_files_are_left_out_and_a_new_run_writes_a_new_segment(tmp_path) -> None:
    (tmp_path / f"{0:020d}{SUFFIX}").write_bytes(b"not a trace segment at all")
    (tmp_path / "notes.txt").write_text("hello")
    log = TraceLog(tmp_path, keep=1000, count=one)
    assert log.load() == ([], {})
    log.append(rows(1, 2), {})
    log.close()
    second = TraceLog(tmp_path, keep=1000, count=one)
    assert second.load()[0] == rows(1, 2)
    second.append(rows(3, 2), {})
    second.close()
    assert TraceLog(tmp_path, keep=1000, count=one).load()[0] == rows(1, 4)
    assert len(list(tmp_path.glob(f"*{SUFFIX}"))) == 3  # the stray file, one per run
