"""Where a new group starts reading: ``start=`` of ``subscribe`` mapped to a GroupSpec.

``"earliest"`` and ``"latest"`` are positions; an ``int`` is an offset (in every partition);
a ``float`` (seconds since the epoch) or a ``datetime`` is a publish time.
"""

from __future__ import annotations

from datetime import datetime

from ..errors import BadRequest
from ..model import StartKind

StartPosition = str | int | float | datetime


def start_position(start: StartPosition) -> tuple[StartKind, float | None]:
    """``(GroupSpec.start, GroupSpec.start_value)`` for a ``start=`` argument."""
    if start == "earliest":
        return "earliest", None
    if start == "latest":
        return "latest", None
    if isinstance(start, bool):
        pass  # a bool is an int in Python, but never a meaningful position
    elif isinstance(start, int):
        if start < 0:
            raise BadRequest(f"a start offset must be >= 0, got {start}")
        return "offset", float(start)
    elif isinstance(start, float):
        return "time", start
    elif isinstance(start, datetime):
        return "time", start.timestamp()  # a naive datetime is local time, as in datetime
    raise BadRequest(
        "start must be 'earliest', 'latest', an int offset, or a datetime or float timestamp "
        f"(seconds since the epoch), got {start!r}"
    )
