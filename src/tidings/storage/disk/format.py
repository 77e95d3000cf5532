"""The disk store's on-disk formats, declared once (mirrored in docs/design/storage.md).

All integers are little-endian. Every file starts with a 16-byte ``FILE_HEADER`` (magic,
format version, flags, and a file-specific number). Checksums are ``zlib.crc32``.

Layout of a store directory::

    DIR/lock                                         flock'ed while a process has the store open
    DIR/catalogue                                    topics and groups (atomically replaced)
    DIR/clean-shutdown                               present only after a clean close()
    DIR/topics/<topic>/<partition>/<base:020d>.log   log segment: header + framed records
    DIR/topics/<topic>/<partition>/<base:020d>.index offsets -> positions of a sealed segment
    DIR/topics/<topic>/groups/<group>/<gen:020d>.journal   a group's ack journal
    DIR/trash/                                       dropped topics, deleted after the next sync
    DIR/quarantine/<path of the file>.<position>.<ns>.bad   bytes recovery cut out of a file
                                                     (never read by tidings; an operator's copy)
    DIR/trace/<first seq:020d>.trace                 the broker's message-trace ring, written by the
                                                     server, not the store (storage/tracelog.py)
"""

from __future__ import annotations

import struct
import zlib

VERSION = 1

# -- every file: magic, version, flags, number (segment: base offset; journal: generation)
FILE_HEADER = struct.Struct("<4sHHQ")
SEGMENT_MAGIC = b"TDLG"
INDEX_MAGIC = b"TDIX"
JOURNAL_MAGIC = b"TDJR"
CATALOGUE_MAGIC = b"TDCT"
CLEAN_MAGIC = b"TDOK"

# -- log record frame: crc32 | payload length | offset | timestamp | payload
# crc32 covers everything after itself (length, offset, timestamp and payload).
# payload: msgspec msgpack of tidings.model.Record (an array: offset, timestamp, id, key, ...).
# A frame with payload length 0 is a lost record: recovery cut damaged bytes out of the
# segment (keeping them in DIR/quarantine) and wrote one such frame for each offset they held,
# so offsets stay contiguous. It is never served (a stored record is never empty).
RECORD_HEADER = struct.Struct("<IIQd")
RECORD_CRC = struct.Struct("<I")
RECORD_FIELDS = struct.Struct("<IQd")  # the part of RECORD_HEADER after the crc
MAX_RECORD_PAYLOAD = 256 * 1024 * 1024  # a length above this is corruption, not a record

# -- index of a segment: FILE_HEADER (number = base offset), INDEX_HEAD, then ``count`` u64
# positions (record i of the segment starts at byte positions[i] of the .log file).
# crc32 covers the rest of INDEX_HEAD and the positions. An index is trusted only if it matches
# the .log file's size (log_end) and the record at the last position checks out.
INDEX_HEAD = struct.Struct("<IIQQ")  # crc32, reserved, count, log_end (segment size covered)
INDEX_ENTRY = "Q"  # array typecode of a position

# -- group journal: FILE_HEADER (number = generation), then fixed 20-byte entries.
# A generation starts with a snapshot (FLOOR/ACK entries) closed by SNAPSHOT_END, then
# FLOOR/ACK entries appended as the group acknowledges. crc32 covers the 16 bytes after it.
JOURNAL_ENTRY = struct.Struct("<IBxxxIQ")  # crc32, kind, pad, partition, offset
JOURNAL_ACK = 1  # offset settled
JOURNAL_FLOOR = 2  # floor moved to offset (GroupCursor.move_floor)
JOURNAL_SNAPSHOT_END = 3  # the snapshot at the start of this generation is complete

# -- catalogue: FILE_HEADER (number = payload length), crc32 of payload, payload.
# payload: msgspec msgpack of {"topics": [TopicSpec...], "groups": [GroupSpec...]}.
CATALOGUE_CRC = struct.Struct("<I")

# -- names
LOCK_FILE = "lock"
CATALOGUE_FILE = "catalogue"
CLEAN_FILE = "clean-shutdown"
TOPICS_DIR = "topics"
GROUPS_DIR = "groups"
DELETIONS_DIR = "deletions"  # a topic's deleted offsets, a group journal of their own
TRASH_DIR = "trash"
QUARANTINE_DIR = "quarantine"
QUARANTINE_SUFFIX = ".bad"
TMP_SUFFIX = ".tmp"
SEGMENT_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
JOURNAL_SUFFIX = ".journal"
NUMBER_WIDTH = 20

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
DEFAULT_JOURNAL_COMPACT = 64 * 1024  # entries appended before a journal is compacted


checksum = zlib.crc32  # checksum(data, start=0) -> u32: every checksum in every file


def numbered(number: int, suffix: str) -> str:
    """File name of a segment, index or journal: the number zero-padded to 20 digits."""
    return f"{number:0{NUMBER_WIDTH}d}{suffix}"


def parse_numbered(name: str, suffix: str) -> int | None:
    """The number in a file name made by :func:`numbered`, or None for another file."""
    stem = name[: -len(suffix)]
    if not name.endswith(suffix) or len(stem) != NUMBER_WIDTH or not stem.isdigit():
        return None
    return int(stem)


def fs_name(name: str) -> str:
    """A topic or group name as a file name: names may be '.' or '..' or start with a dot, so
    those get a '%' prefix ('%' is not allowed in names, so this cannot collide)."""
    return "%" + name if name.startswith(".") else name
