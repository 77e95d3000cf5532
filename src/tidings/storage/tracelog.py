"""The persisted message-trace ring: the broker's trace rows in a few segment files under
``DIR/trace/`` so that ``tidings trace`` still answers after a restart (docs/tracing.md).

Layout and format, declared once::

    DIR/trace/<first seq:020d>.trace    header + frames, a segment per SEGMENT_EVENTS events

A segment starts with the store's 16-byte file header (``TRACE_MAGIC``, version, flags 0, the
first sequence number). Each write is one frame: ``FRAME`` (crc32 of the payload, payload
length) and a msgpack payload ``[rows, consumers]``: the ring's rows in order (tuples of
strings, numbers, None, and lists of them) and the member id -> connection names those rows
mention. Reading stops at the first frame that is short or fails its checksum (a write torn by
a kill): every frame before it is kept.

Bounded: when a segment holds ``segment_events`` events the next write opens a new one, and
the oldest segments are deleted while the newer ones still hold ``keep`` events (at most
``keep`` + 2 segments' worth on disk).

Durability: a frame is written to the file (the OS's page cache) when it is appended, without
fsync; a segment is fsynced when the next one is opened and at close. So a killed broker
process (SIGKILL) loses nothing that was appended; a machine that loses power can lose the
open segment's frames since its last fsync. The broker appends off its hot path (docs).

This module knows nothing of the rows' meaning: the broker's ``tracing`` module does.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Any

import msgspec

from .disk.format import FILE_HEADER, VERSION

TRACE_MAGIC = b"TDTR"
TRACE_DIR = "trace"
SUFFIX = ".trace"
FRAME = struct.Struct("<II")  # crc32 of the payload, payload length
SEGMENT_EVENTS = 10_000
MAX_FRAME = 256 * 1024 * 1024

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode


def _name(first_seq: int) -> str:
    return f"{first_seq:020d}{SUFFIX}"


def _first_seq(rows: list[Any]) -> int:
    return int(rows[0][0])


class TraceLog:
    """Append-only trace segments in ``directory`` (created if missing). ``count`` tells how
    many events a row holds (the broker's batch rows hold several)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        keep: int,
        count: Any,
        segment_events: int = SEGMENT_EVENTS,
    ) -> None:
        self.dir = Path(directory)
        self.keep = keep
        self.count = count
        self.segment_events = max(1, segment_events)
        self.segments: list[tuple[Path, int]] = []  # (file, events in it), oldest first
        self._file: Any = None
        self.written = 0  # frames appended by this process

    # -- reading -----------------------------------------------------------------------------

    def load(self) -> tuple[list[tuple[Any, ...]], dict[str, str]]:
        """Every row the segments hold, oldest first, and the consumers they name. Segments
        that are not trace segments (bad header) are skipped; a torn tail ends its segment."""
        self.dir.mkdir(parents=True, exist_ok=True)
        rows: list[tuple[Any, ...]] = []
        consumers: dict[str, str] = {}
        self.segments = []
        for path in sorted(self.dir.glob(f"*{SUFFIX}")):
            got, events = self._read(path, consumers)
            if got is None:
                continue
            rows.extend(got)
            self.segments.append((path, events))
        return rows, consumers

    def _read(
        self, path: Path, consumers: dict[str, str]
    ) -> tuple[list[tuple[Any, ...]] | None, int]:
        try:
            data = path.read_bytes()
        except OSError:
            return None, 0
        if len(data) < FILE_HEADER.size:
            return None, 0
        magic, _version, _flags, _first = FILE_HEADER.unpack_from(data, 0)
        if magic != TRACE_MAGIC:
            return None, 0
        rows: list[tuple[Any, ...]] = []
        events = 0
        pos = FILE_HEADER.size
        while pos + FRAME.size <= len(data):
            crc, length = FRAME.unpack_from(data, pos)
            start = pos + FRAME.size
            payload = data[start : start + length]
            if len(payload) != length or zlib.crc32(payload) != crc:
                break  # torn by a kill mid-write: keep what came before
            try:
                frame_rows, named = _decode(payload)
            except (msgspec.DecodeError, ValueError, TypeError):
                break
            for row in frame_rows:
                row = tuple(row)
                rows.append(row)
                events += self.count(row)
            consumers.update(named)
            pos = start + length
        return rows, events

    # -- writing -----------------------------------------------------------------------------

    def append(self, rows: list[tuple[Any, ...]], consumers: dict[str, str]) -> None:
        """Write ``rows`` (newer than everything written before) as one frame."""
        if not rows:
            return
        if self._file is None or self.segments[-1][1] >= self.segment_events:
            self._open_segment(_first_seq(rows))
        payload = _encode([rows, consumers])
        if len(payload) > MAX_FRAME:
            half = len(rows) // 2
            if half:
                self.append(rows[:half], consumers)
                self.append(rows[half:], consumers)
            return
        self._file.write(FRAME.pack(zlib.crc32(payload), len(payload)) + payload)
        self._file.flush()  # into the OS: survives a killed process
        path, events = self.segments[-1]
        self.segments[-1] = (path, events + sum(self.count(r) for r in rows))
        self.written += 1

    def _open_segment(self, first_seq: int) -> None:
        self._close_file()
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / _name(first_seq)
        f = open(path, "wb")  # noqa: SIM115 - kept open across appends
        f.write(FILE_HEADER.pack(TRACE_MAGIC, VERSION, 0, first_seq))
        f.flush()
        self._file = f
        self.segments.append((path, 0))
        self._prune()

    def _prune(self) -> None:
        """Delete the oldest segments while the newer ones hold ``keep`` events."""
        while len(self.segments) > 1:
            held = sum(events for _, events in self.segments[1:])
            if held < self.keep:
                break
            path, _ = self.segments.pop(0)
            path.unlink(missing_ok=True)

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    def close(self) -> None:
        """fsync and close the open segment."""
        self._close_file()
