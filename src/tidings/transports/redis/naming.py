"""Where tidings keeps what in Redis: key names, the fields of a stored message.

Every key of a topic starts with ``tidings:{<tag>}:<topic>:``; the ``{<tag>}`` hash tag puts
all of a topic's keys in one Redis Cluster slot, so that each script below touches one slot.
A topic's tag is its own name, except for a dead-letter topic created on demand, which takes
its source topic's tag (the dead-letter move is then one atomic script). The registry hash
``tidings:topics`` maps each topic to its tag.

Offsets: a partition is one stream whose entry ids tidings chooses, ``0-<offset + 1>``
(``XADD key 0-*``), so offsets are 0, 1, 2, ... per partition as on the built-in broker. The
publish time is the field ``ts`` (the server's clock, milliseconds).
"""

from __future__ import annotations

REGISTRY = "tidings:topics"  # hash: topic name -> its hash tag

# fields of a stored message
F_ID = "id"  # the tidings message id
F_BODY = "b"
F_KEY = "k"
F_HEADERS = "h"  # JSON object of the application's headers
F_MSG_ID = "m"  # the producer message id
F_TTL = "ttl"  # seconds after ts
F_DELAY = "dl"  # seconds after ts
F_TS = "ts"  # set by the publish script: server time, ms


class TopicKeys:
    """The keys of one topic."""

    __slots__ = ("name", "prefix", "tag")

    def __init__(self, name: str, tag: str | None = None) -> None:
        self.name = name
        self.tag = tag or name
        self.prefix = f"tidings:{{{self.tag}}}:{name}:"

    @property
    def meta(self) -> str:
        """String: the TopicSpec as JSON (the topic exists while this key does)."""
        return self.prefix + "meta"

    @property
    def groups(self) -> str:
        """Hash: group name -> its GroupSpec as JSON."""
        return self.prefix + "groups"

    def stream(self, partition: int) -> str:
        return f"{self.prefix}p:{partition}"

    def dedup(self, msg_id: str) -> str:
        """String with a TTL of the dedup window: '<partition> <entry id>' of the original."""
        return f"{self.prefix}dedup:{msg_id}"

    def hold(self, group: str, partition: int) -> str:
        """Sorted set: pending entries not to be claimed before their score (ms)."""
        return f"{self.prefix}g:{group}:hold:{partition}"

    def skips(self, group: str, partition: int) -> str:
        """Hash: entry id -> early deliveries of a delayed message (not counted)."""
        return f"{self.prefix}g:{group}:skips:{partition}"

    def errors(self, group: str, partition: int) -> str:
        """Hash: entry id -> the last error text given to nack."""
        return f"{self.prefix}g:{group}:errors:{partition}"

    def members(self, group: str) -> str:
        """Hash: member id -> its last heartbeat (server time, ms)."""
        return f"{self.prefix}g:{group}:members"

    def stuck(self, group: str) -> str:
        """Hash: member id -> its stall as JSON (expiries, in_flight, partitions), written by
        a stuck member itself and deleted when it settles again or leaves."""
        return f"{self.prefix}g:{group}:stuck"

    def pattern(self) -> str:
        """SCAN pattern of every key of the topic."""
        return self.prefix + "*"


def entry_id(offset: int) -> str:
    return f"0-{offset + 1}"


def offset_of(entry: str) -> int:
    return int(entry.rpartition("-")[2]) - 1
