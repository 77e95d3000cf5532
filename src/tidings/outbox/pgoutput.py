"""A decoder of PostgreSQL's ``pgoutput`` logical replication messages (protocol version 1).

Sans-IO: :class:`Decoder` takes the payload bytes of each replication message and returns
what happened: a transaction began, a relation (table) was described, a row was inserted, a
transaction committed. Only what the outbox needs is decoded (Begin, Relation, Insert,
Commit); the rest (Update, Delete, Truncate, Type, Origin, Message) is recognised and skipped.
Column values arrive in PostgreSQL's text format (``bytea`` as ``\\x`` hex). Message layout:
https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

_BEGIN = struct.Struct("!QqI")  # final LSN, commit time, xid
_COMMIT = struct.Struct("!bQQq")  # flags, commit LSN, end LSN, commit time
_I32 = struct.Struct("!i")
_I16 = struct.Struct("!h")


class DecodeError(ValueError):
    """A pgoutput message that does not parse."""


@dataclass(slots=True)
class Begin:
    final_lsn: int
    xid: int


@dataclass(slots=True)
class Commit:
    commit_lsn: int
    end_lsn: int


@dataclass(slots=True)
class Relation:
    oid: int
    namespace: str
    name: str
    columns: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Insert:
    relation: Relation
    values: dict[str, str | None]


def _cstring(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(b"\0", pos)
    return data[pos:end].decode(), end + 1


class Decoder:
    """Decodes one replication stream; remembers the relations it was told about."""

    def __init__(self) -> None:
        self.relations: dict[int, Relation] = {}

    def decode(self, data: bytes) -> Begin | Commit | Relation | Insert | None:
        if not data:
            raise DecodeError("empty pgoutput message")
        kind = data[0:1]
        try:
            if kind == b"B":
                final_lsn, _ts, xid = _BEGIN.unpack_from(data, 1)
                return Begin(final_lsn, xid)
            if kind == b"C":
                _flags, commit_lsn, end_lsn, _ts = _COMMIT.unpack_from(data, 1)
                return Commit(commit_lsn, end_lsn)
            if kind == b"R":
                return self._relation(data)
            if kind == b"I":
                return self._insert(data)
        except (struct.error, ValueError, IndexError, UnicodeDecodeError) as exc:
            raise DecodeError(f"bad pgoutput {kind!r} message: {exc}") from exc
        return None  # U, D, T, Y, O, M: not the outbox's business

    def _relation(self, data: bytes) -> Relation:
        (oid,) = _I32.unpack_from(data, 1)
        namespace, pos = _cstring(data, 5)
        name, pos = _cstring(data, pos)
        pos += 1  # replica identity setting
        (ncols,) = _I16.unpack_from(data, pos)
        pos += 2
        columns = []
        for _ in range(ncols):
            pos += 1  # flags
            col, pos = _cstring(data, pos)
            pos += 8  # type oid, type modifier
            columns.append(col)
        relation = Relation(oid, namespace, name, columns)
        self.relations[oid] = relation
        return relation

    def _insert(self, data: bytes) -> Insert:
        (oid,) = _I32.unpack_from(data, 1)
        relation = self.relations.get(oid)
        if relation is None:
            raise DecodeError(f"insert into relation {oid} before its Relation message")
        if data[5:6] != b"N":
            raise DecodeError("insert without a new tuple")
        (ncols,) = _I16.unpack_from(data, 6)
        pos = 8
        values: dict[str, str | None] = {}
        for i in range(ncols):
            kind = data[pos : pos + 1]
            pos += 1
            if kind == b"t":
                (length,) = _I32.unpack_from(data, pos)
                pos += 4
                value: str | None = data[pos : pos + length].decode()
                pos += length
            elif kind in (b"n", b"u"):
                value = None
            else:
                raise DecodeError(f"unknown tuple column kind {kind!r}")
            values[relation.columns[i]] = value
        return Insert(relation, values)


def bytea(text: str) -> bytes:
    """A ``bytea`` column value in text format (hex output, PostgreSQL's default)."""
    if text.startswith("\\x"):
        return bytes.fromhex(text[2:])
    raise DecodeError("bytea value not in hex format: set bytea_output = 'hex'")


def lsn_text(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)
