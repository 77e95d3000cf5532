"""One log segment: a ``<base>.log`` file of framed records and its offset -> position index.

The index is an ``array('Q')`` of record positions in memory (8 bytes a record, no per-record
Python objects) and a ``<base>.index`` file on disk, written when the segment is sealed and at
a clean close. Records are framed and checksummed here (layout in format.py); reads take the
bodies from the file (the page cache) and check every frame's checksum before decoding it.
Loading a segment either trusts a matching index (and checks the last record) or scans the
file frame by frame (scan.py): damaged bytes in the middle are cut out and quarantined, the
records after them keep their offsets, a torn tail is cut off.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence

import msgspec

from ...errors import StorageError
from ...model import Record
from . import files
from .durability import Durability
from .format import (
    FILE_HEADER,
    INDEX_ENTRY,
    INDEX_HEAD,
    INDEX_MAGIC,
    INDEX_SUFFIX,
    MAX_RECORD_PAYLOAD,
    RECORD_CRC,
    RECORD_FIELDS,
    RECORD_HEADER,
    SEGMENT_MAGIC,
    SEGMENT_SUFFIX,
    TMP_SUFFIX,
    VERSION,
    checksum,
    numbered,
)
from .recovery import Recovery
from .scan import Damage
from .scan import scan as scan_frames

_encoder = msgspec.msgpack.Encoder()
_decode = msgspec.msgpack.Decoder(Record).decode
_HEAD = RECORD_HEADER.size
_BLANK_HEAD = bytes(_HEAD)  # filled in once the payload's length is known
_pack_fields_into = RECORD_FIELDS.pack_into
_pack_crc_into = RECORD_CRC.pack_into
_CRC_LENGTH = struct.Struct("<II")  # the start of RECORD_HEADER
_BIG_ENDIAN = sys.byteorder == "big"
log = logging.getLogger("tidings.storage")


def lost_frames(first: int, count: int, timestamp: float) -> bytes:
    """Frames with an empty payload for ``count`` offsets from ``first``: records recovery lost
    to damage (never served; a scan finds them valid, so the log stays whole)."""
    out = bytearray()
    for offset in range(first, first + count):
        fields = RECORD_FIELDS.pack(0, offset, timestamp)
        out += RECORD_CRC.pack(checksum(fields)) + fields
    return bytes(out)


def encode_batch(
    records: Sequence[Record], expected: int, where: str
) -> tuple[bytearray, list[int]]:
    """Frame ``records`` (offsets must continue from ``expected``): the bytes to write and each
    frame's position relative to the start of those bytes. Records are encoded into one
    buffer (no bytes object per record, no join), then each frame's header is filled in:
    measured 548 -> 467 ns a 256-byte record."""
    buf = bytearray()
    positions: list[int] = []
    encode_into = _encoder.encode_into
    for record in records:
        if record.offset != expected:
            raise StorageError(
                f"append to {where} out of order: offset {record.offset}, expected {expected}"
            )
        positions.append(len(buf))
        buf += _BLANK_HEAD
        encode_into(record, buf, -1)
        expected += 1
    end = len(buf)
    last = len(positions) - 1
    with memoryview(buf) as view:
        for i, start in enumerate(positions):
            stop = positions[i + 1] if i < last else end
            length = stop - start - _HEAD
            if length > MAX_RECORD_PAYLOAD:
                raise StorageError(f"record {records[i].offset} of {where} is too large to store")
            record = records[i]
            _pack_fields_into(buf, start + 4, length, record.offset, record.timestamp)
            _pack_crc_into(buf, start, checksum(view[start + 4 : stop]))
    return buf, positions


class Segment:
    __slots__ = ("base", "damaged", "fd", "first_ts", "path", "positions", "size")

    def __init__(self, path: str, base: int, fd: int, size: int) -> None:
        self.path = path
        self.base = base
        self.fd = fd
        self.size = size  # bytes of the file that hold good frames
        self.positions = array(INDEX_ENTRY)
        self.first_ts = 0.0  # timestamp of the first record (when there is one)
        self.damaged: set[int] = set()  # offsets found corrupt by a read (reported once)

    @property
    def index_path(self) -> str:
        return self.path[: -len(SEGMENT_SUFFIX)] + INDEX_SUFFIX

    @property
    def count(self) -> int:
        return len(self.positions)

    @property
    def next_offset(self) -> int:
        return self.base + len(self.positions)

    # -- creating and loading

    @classmethod
    def create(cls, directory: str, base: int, durability: Durability) -> Segment:
        path = os.path.join(directory, numbered(base, SEGMENT_SUFFIX))
        try:
            files.remove(path[: -len(SEGMENT_SUFFIX)] + INDEX_SUFFIX)  # a stale one
            fd = files.open_file(path, create=True)
        except OSError as exc:
            raise files.storage_error(exc, "creating segment", path) from exc
        try:
            files.write_at(fd, FILE_HEADER.pack(SEGMENT_MAGIC, VERSION, 0, base), 0)
        except OSError as exc:
            os.close(fd)
            files.remove(path)
            raise files.storage_error(exc, "creating segment", path) from exc
        durability.wrote(fd, path)
        durability.changed(directory)
        return cls(path, base, fd, FILE_HEADER.size)

    @classmethod
    def load(cls, path: str, base: int, scan: bool, recovery: Recovery, name: str) -> Segment:
        """Open a segment. Unless ``scan`` (or ``recovery.verify``), a matching index is
        trusted; otherwise every frame is checked: damaged bytes in the middle are cut out (and
        quarantined), the frames after them keep their offsets, a torn tail is cut off."""
        fd = files.open_file(path)
        try:
            return cls(path, base, fd, os.fstat(fd).st_size)._load(scan, recovery, name)
        except BaseException:
            os.close(fd)
            raise

    def _load(self, scan: bool, recovery: Recovery, name: str) -> Segment:
        header = os.pread(self.fd, FILE_HEADER.size, 0)
        fields = FILE_HEADER.unpack(header) if len(header) == FILE_HEADER.size else None
        if fields and fields[0] == SEGMENT_MAGIC and fields[1] > VERSION:
            raise StorageError(
                f"{self.path} has format version {fields[1]} but this tidings reads version "
                f"{VERSION}: upgrade tidings to open it"
            )
        if not fields or (fields[0], fields[1], fields[3]) != (SEGMENT_MAGIC, VERSION, self.base):
            recovery.truncated(f"{self.path}:0: bad segment header")
            if not recovery.dry_run:
                if self.size > FILE_HEADER.size:  # the frames after it may be good: keep a copy
                    recovery.quarantine(self.path, 0, header)
                files.write_at(self.fd, FILE_HEADER.pack(SEGMENT_MAGIC, VERSION, 0, self.base), 0)
                if self.size < FILE_HEADER.size:
                    self.truncate(FILE_HEADER.size)
                    return self
        elif not (scan or recovery.verify) and self._load_index():
            return self
        self._scan(recovery, name)
        if not scan and not recovery.dry_run:
            self.write_index()  # the index was missing, stale or damaged: rebuild it
        return self

    def _scan(self, recovery: Recovery, name: str) -> None:
        """Check every frame (see :func:`scan.scan`). Damage in the middle: the file is
        rewritten with a lost-record frame for each offset the damaged bytes held (so the next
        scan finds a whole log), the bytes go to the quarantine. A torn tail is cut off."""
        size = self.size
        if size <= FILE_HEADER.size:
            self.positions = array(INDEX_ENTRY)
            return
        with mmap.mmap(self.fd, size, access=mmap.ACCESS_READ) as mm, memoryview(mm) as view:
            found = scan_frames(view, size, self.base)
            for damage in found.damage:
                kept = recovery.quarantine(self.path, damage.start, view[damage.start : damage.end])
                if damage.torn:
                    recovery.truncated(f"{self.path}:{damage.start}: {damage.reason}")
                else:
                    recovery.lost(
                        name,
                        damage.first,
                        damage.lost,
                        self.path,
                        damage.start,
                        damage.reason,
                        kept,
                    )
            middle = [d for d in found.damage if not d.torn]
            if middle and not recovery.dry_run:
                self._rewrite(view, middle, found.end)
        self.positions, self.first_ts = found.positions, found.first_ts
        if recovery.dry_run:
            self.size = found.end
        elif middle:
            self._scan(recovery, name)  # the new file: its positions (it holds no damage)
        elif found.end < size:
            self.truncate(found.end)

    def _rewrite(self, view: memoryview, cuts: list[Damage], end: int) -> None:
        """Replace the file (atomically, durably) by its good frames, with a lost-record frame
        for each offset in the ``cuts`` instead of their bytes."""
        parts: list[bytes | memoryview] = []
        position = 0
        for cut in cuts:
            parts.append(view[position : cut.start])
            timestamp = RECORD_HEADER.unpack_from(view, cut.end)[3]  # the next good frame's
            parts.append(lost_frames(cut.first, cut.lost, timestamp))
            position = cut.end
        parts.append(view[position:end])
        tmp = self.path + TMP_SUFFIX
        fd = files.open_file(tmp, create=True)
        try:
            at = 0
            for part in parts:
                files.write_at(fd, part, at)
                at += len(part)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            files.remove(tmp)
            raise
        finally:
            del parts
        os.replace(tmp, self.path)
        files.fsync_path(os.path.dirname(self.path))
        os.close(self.fd)
        self.fd = fd
        self.size = at

    def append_lost(self, first: int, count: int, durability: Durability) -> None:
        """Append lost-record frames for ``count`` offsets from ``first`` (recovery only: the
        next segment starts after offsets this one never received)."""
        timestamp = self.timestamp_at(self.count - 1) if self.count else 0.0
        data = lost_frames(first, count, timestamp)
        self.append(data, list(range(0, len(data), _HEAD)), timestamp, durability)

    def truncate(self, size: int) -> None:
        """Cut the file to ``size`` bytes, durably (recovery only)."""
        os.ftruncate(self.fd, size)
        os.fsync(self.fd)
        self.size = size

    def _load_index(self) -> bool:
        try:
            with open(self.index_path, "rb") as f:
                data = f.read()
        except OSError:
            return False
        start = FILE_HEADER.size + INDEX_HEAD.size
        if len(data) < start or FILE_HEADER.unpack_from(data) != (
            INDEX_MAGIC,
            VERSION,
            0,
            self.base,
        ):
            return False
        crc, _, count, log_end = INDEX_HEAD.unpack_from(data, FILE_HEADER.size)
        if (
            log_end != self.size
            or len(data) != start + 8 * count
            or checksum(memoryview(data)[FILE_HEADER.size + 4 :]) != crc
        ):
            return False
        positions = array(INDEX_ENTRY, data[start:])
        if _BIG_ENDIAN:
            positions.byteswap()
        if count == 0:
            empty: bool = log_end == FILE_HEADER.size
            return empty
        last = positions[-1]
        frame = os.pread(self.fd, log_end - last, last)
        if len(frame) < _HEAD:
            return False
        crc, length, _, _ = RECORD_HEADER.unpack_from(frame)
        if _HEAD + length != len(frame) or checksum(memoryview(frame)[4:]) != crc:
            return False
        self.positions = positions
        self.first_ts = self.timestamp_at(0)
        return True

    def write_index(self) -> bool:
        """Write the ``.index`` file (not fsynced: the caller arranges that). False on error:
        an index is only a shortcut, the segment can always be scanned instead."""
        positions = self.positions
        if _BIG_ENDIAN:
            positions = array(INDEX_ENTRY, positions)
            positions.byteswap()
        body = positions.tobytes()
        head = INDEX_HEAD.pack(0, 0, len(positions), self.size)
        crc = checksum(body, checksum(head[4:]))
        data = b"".join(
            (
                FILE_HEADER.pack(INDEX_MAGIC, VERSION, 0, self.base),
                INDEX_HEAD.pack(crc, 0, len(positions), self.size),
                body,
            )
        )
        try:
            fd = files.open_file(self.index_path, create=True)
            try:
                files.write_at(fd, data, 0)
            finally:
                os.close(fd)
        except OSError:
            files.remove(self.index_path)
            return False
        return True

    # -- appending and reading

    def append(
        self, data: bytes | bytearray, positions: list[int], first_ts: float, d: Durability
    ) -> None:
        try:
            files.write_at(self.fd, data, self.size)
        except OSError as exc:
            try:
                os.ftruncate(self.fd, self.size)  # no partial frame stays behind
            except OSError:
                pass  # recovery truncates it; reads never reach past self.size
            raise files.storage_error(exc, "appending to", self.path) from exc
        d.wrote(self.fd, self.path)
        if not self.positions:
            self.first_ts = first_ts
        start = self.size
        self.positions.extend([start + p for p in positions])
        self.size += len(data)

    def fit(self, index: int, max_count: int, max_bytes: int, one: bool) -> tuple[int, int]:
        """How many records from ``index`` fit in ``max_count``/``max_bytes`` (at least one if
        ``one``), and their bytes."""
        positions = self.positions
        count = len(positions)
        start = positions[index]
        last = min(count, index + max_count)
        end = positions[last] if last < count else self.size
        if end - start <= max_bytes:
            return last - index, end - start
        n = bisect_right(positions, start + max_bytes, index + 1, last) - 1 - index
        if n == 0:
            if not one:
                return 0, 0
            n = 1
        end = positions[index + n] if index + n < count else self.size
        return n, end - start

    def read(self, index: int, n: int) -> list[Record]:
        """Records ``index``..``index+n-1`` of the segment: each frame is bounded by the index and
        checked. A lost-record frame is skipped; so is a damaged one, reported once
        (``tidings store repair`` cuts it out)."""
        positions = self.positions
        count = len(positions)
        start = positions[index]
        stop = index + n
        end = positions[stop] if stop < count else self.size
        try:
            data = os.pread(self.fd, end - start, start)
        except OSError as exc:
            raise files.storage_error(exc, "reading", self.path) from exc
        if len(data) != end - start:
            raise StorageError(f"{self.path}:{len(data) + start}: segment shorter than its index")
        view = memoryview(data)
        unpack, crc32, decode = _CRC_LENGTH.unpack_from, checksum, _decode
        out: list[Record] = []
        p = 0
        for i in range(index, stop):
            q = (positions[i + 1] if i + 1 < count else self.size) - start
            problem = ""
            try:
                crc, length = unpack(view, p)
                if _HEAD + length != q - p:
                    problem = f"frame length {length} does not match the index"
                elif crc32(view[p + 4 : q]) != crc:
                    problem = "checksum mismatch"
                elif not length:
                    p = q
                    continue  # a record lost to damage (recovery wrote this frame for it)
                else:
                    record = decode(view[p + _HEAD : q])
                    if record.offset != self.base + i:
                        problem = f"offset {record.offset} where {self.base + i} was expected"
            except (ValueError, struct.error, msgspec.DecodeError) as exc:
                problem = str(exc)
            if problem:
                self._damaged(i, start + p, problem)
            else:
                out.append(record)
            p = q
        return out

    def _damaged(self, index: int, position: int, problem: str) -> None:
        offset = self.base + index
        if offset not in self.damaged:
            self.damaged.add(offset)
            log.error(
                "%s:%d: corrupt record at offset %d (%s): it is not served; stop the broker "
                "and run `tidings store repair` on its data directory to cut it out",
                self.path,
                position,
                offset,
                problem,
            )

    def timestamp_at(self, index: int) -> float:
        header = os.pread(self.fd, _HEAD, self.positions[index])
        timestamp: float = RECORD_HEADER.unpack(header)[3]
        return timestamp

    def offset_at(self, timestamp: float) -> int:
        """The first offset in this segment whose timestamp is >= ``timestamp`` (or next)."""
        i = bisect_left(range(len(self.positions)), timestamp, key=self.timestamp_at)
        return self.base + i

    def close(self, durability: Durability) -> None:
        durability.forget(self.fd)
        os.close(self.fd)
