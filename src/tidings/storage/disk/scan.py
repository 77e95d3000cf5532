"""Reading a segment file frame by frame: the good frames, and the damaged byte ranges between
them (recovery, ``tidings store check`` and ``tidings store repair`` share it).

After a damaged frame the scan resynchronises on the next valid frame: a frame whose length
fits the file, whose checksum matches and whose offset continues the log (no more offsets
skipped than the damaged bytes could have held). Only the records in the damaged bytes are
lost; a damaged range with no valid frame after it is a torn tail (records that may never have
been confirmed). Pure functions over a buffer: nothing here writes.
"""

from __future__ import annotations

from array import array
from typing import NamedTuple

from .format import FILE_HEADER, INDEX_ENTRY, MAX_RECORD_PAYLOAD, RECORD_HEADER, checksum

_HEAD = RECORD_HEADER.size
_unpack = RECORD_HEADER.unpack_from


class Damage(NamedTuple):
    """Bytes ``start:end`` of a segment that hold no good frame. ``lost`` offsets from
    ``first`` were in them (0 for a torn tail: nothing after it says how many there were)."""

    start: int
    end: int
    first: int
    lost: int
    reason: str

    @property
    def torn(self) -> bool:
        return self.lost == 0


class Scan(NamedTuple):
    """``positions[i]``: where the record at offset ``base + i`` starts; a lost record's entry
    is the start of its damaged range (it holds no frame: the segment is rewritten with a
    lost-record frame there). ``end``: where the good bytes end."""

    positions: array[int]
    damage: list[Damage]
    first_ts: float
    end: int


def _problem(view: memoryview, size: int, position: int) -> tuple[str, int, int, float]:
    """Check the frame at ``position``: (problem or "", its end, its offset, its timestamp)."""
    if size - position < _HEAD:
        return "torn record header", 0, 0, 0.0
    crc, length, offset, timestamp = _unpack(view, position)
    end = position + _HEAD + length
    if length > MAX_RECORD_PAYLOAD:
        return f"bad record length {length}", 0, 0, 0.0
    if end > size:
        return f"torn record (length {length}, {size - position} bytes left)", 0, 0, 0.0
    if checksum(view[position + 4 : end]) != crc:
        return "checksum mismatch", 0, 0, 0.0
    return "", end, offset, timestamp


def _resync(view: memoryview, size: int, start: int, expected: int) -> tuple[int, int] | None:
    """The next valid frame after damaged bytes at ``start``: (position, offset), or None."""
    for position in range(start + 1, size - _HEAD + 1):
        _, length, offset, _ = _unpack(view, position)
        if (
            length > MAX_RECORD_PAYLOAD
            or position + _HEAD + length > size
            or not expected <= offset <= expected + (position - start) // _HEAD
        ):
            continue  # cheap tests first: a checksum only for a plausible frame
        if not _problem(view, size, position)[0]:
            return position, offset
    return None


def scan(view: memoryview, size: int, base: int) -> Scan:
    """Every frame of a segment's bytes (its header already checked), with resynchronisation
    after damage."""
    positions = array(INDEX_ENTRY)
    damage: list[Damage] = []
    position, expected, first_ts, good = FILE_HEADER.size, base, 0.0, 0
    while position < size:
        problem, end, offset, timestamp = _problem(view, size, position)
        if not problem and offset == expected:
            if not good:
                first_ts = timestamp
            good += 1
            positions.append(position)
            position, expected = end, expected + 1
            continue
        if not problem and offset > expected:  # a whole frame went missing: nothing to cut
            damage.append(Damage(position, position, expected, offset - expected, "gap"))
            positions.extend([position] * (offset - expected))
            expected = offset
            continue
        problem = problem or f"offset {offset} where {expected} was expected"
        found = _resync(view, size, position, expected)
        if found is None:
            damage.append(Damage(position, size, expected, 0, problem))
            return Scan(positions, damage, first_ts, position)
        after, offset = found
        damage.append(Damage(position, after, expected, offset - expected, problem))
        positions.extend([position] * (offset - expected))
        position, expected = after, offset
    return Scan(positions, damage, first_ts, position)
