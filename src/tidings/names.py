"""Validation of topic and group names (one rule for every transport)."""

from __future__ import annotations

import re

from .errors import InvalidName

NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


def validate_name(kind: str, name: object) -> str:
    """Return ``name`` if it is a valid topic/group name, else raise :class:`InvalidName`."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidName(
            f"invalid {kind} name {name!r}: use 1 to 200 letters, digits, '.', '-' or '_'"
        )
    return name
