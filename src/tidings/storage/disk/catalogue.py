"""The catalogue file: every topic's and group's spec, replaced atomically as a whole.

Topic and group changes are rare, so the whole catalogue is rewritten (temp file, fsync,
rename, fsync directory) by the next ``sync()``; the event-loop thread only encodes it.
"""

from __future__ import annotations

import msgspec

from ...errors import StorageError
from ...model import GroupSpec, TopicSpec
from .format import CATALOGUE_CRC, CATALOGUE_MAGIC, FILE_HEADER, VERSION, checksum


class Catalogue(msgspec.Struct):
    topics: list[TopicSpec] = msgspec.field(default_factory=list)
    groups: list[GroupSpec] = msgspec.field(default_factory=list)


def encode(catalogue: Catalogue) -> bytes:
    payload = msgspec.msgpack.encode(catalogue)
    return b"".join(
        (
            FILE_HEADER.pack(CATALOGUE_MAGIC, VERSION, 0, len(payload)),
            CATALOGUE_CRC.pack(checksum(payload)),
            payload,
        )
    )


def decode(data: bytes, path: str) -> Catalogue:
    """Parse a catalogue file; a damaged one is an error (it is only ever replaced whole, so
    damage means the disk lost data: restore the directory from a backup)."""
    start = FILE_HEADER.size + CATALOGUE_CRC.size
    if len(data) < start:
        raise StorageError(f"{path} is damaged (too short): restore it from a backup")
    magic, version, _, length = FILE_HEADER.unpack_from(data)
    if magic != CATALOGUE_MAGIC:
        raise StorageError(f"{path} is not a tidings catalogue: is this a tidings data directory?")
    if version > VERSION:
        raise StorageError(f"{path} has format version {version}; this tidings reads {VERSION}")
    (crc,) = CATALOGUE_CRC.unpack_from(data, FILE_HEADER.size)
    payload = data[start:]
    if len(payload) != length or checksum(payload) != crc:
        raise StorageError(f"{path} is damaged (checksum mismatch): restore it from a backup")
    try:
        return msgspec.msgpack.decode(payload, type=Catalogue)
    except msgspec.DecodeError as exc:
        raise StorageError(f"{path} cannot be decoded ({exc}): restore it from a backup") from exc
