"""redis-py's replies as this transport receives them, typed once.

The transport never sets ``decode_responses``, so every reply holds ``bytes``; redis-py types
them for both settings (``bytes | str``, and ``None`` where a key may be missing). The aliases
and helpers here state what the replies really are, at the call that receives them, so that
the rest of the transport reads typed values rather than casting at every use.
"""

from __future__ import annotations

from typing import Any, cast

Fields = dict[bytes, bytes]  # a stream entry's fields
Entries = list[tuple[bytes, Fields]]  # XRANGE / XREVRANGE
# XREADGROUP: per stream its entries; an entry trimmed meanwhile has no fields
StreamEntries = list[tuple[bytes, list[tuple[bytes, Fields | None]]]]


def entries(reply: object) -> Entries:
    """An ``XRANGE``/``XREVRANGE`` reply (an empty list when there is none)."""
    return cast(Entries, reply or [])


def stream_entries(reply: object) -> StreamEntries:
    """An ``XREADGROUP`` reply (an empty list when the read timed out)."""
    return cast(StreamEntries, reply or [])


def xinfo(reply: object) -> dict[str, Any]:
    """An ``XINFO STREAM`` / ``XINFO GROUPS`` item: redis-py's parsed dict, str keys."""
    return cast(dict[str, Any], reply)


def text(value: object) -> str:
    """A reply value as text (bytes decoded as UTF-8; anything else as ``str()``)."""
    return value.decode() if isinstance(value, bytes) else str(value)
