"""Validation of topic and group names (one rule for every transport).

A name is 1 to 200 letters, digits, '.', '-' or '_'; the '.'-separated segments are not empty
(no leading, trailing or doubled '.'), and it does not start with '-' (it would read as a CLI
option).

Names that start with ``REPLY_PREFIX`` (``_reply.``) are reserved for reply topics: only the
broker names them (``create_reply_topic``), and an ordinary ``create_topic`` of such a name is
refused, so nobody can claim a name an operator or a requester will need.
"""

from __future__ import annotations

import re

from .errors import InvalidName

NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
_RULE = "use 1 to 200 letters, digits, '.', '-' or '_'"
REPLY_PREFIX = "_reply."


def is_reply_topic(name: str) -> bool:
    """True for a name in the reply-topic namespace (``_reply.``), which the broker names."""
    return name.startswith(REPLY_PREFIX)


def refuse_reply_name(name: str) -> None:
    """Raise :class:`InvalidName` for an ordinary topic in the reserved reply namespace."""
    if is_reply_topic(name):
        raise InvalidName(
            f"invalid topic name {name!r}: names starting with {REPLY_PREFIX!r} are reserved "
            "for reply topics, which the broker names itself (create_reply_topic); choose "
            "another name"
        )


def validate_name(kind: str, name: object) -> str:
    """Return ``name`` if it is a valid topic/group name, else raise :class:`InvalidName`."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidName(f"invalid {kind} name {name!r}: {_RULE}")
    if name.startswith(".") or name.endswith(".") or ".." in name:
        raise InvalidName(
            f"invalid {kind} name {name!r}: a '.' separates two non-empty parts "
            f"(no leading, trailing or doubled '.'); {_RULE}"
        )
    if name.startswith("-"):
        raise InvalidName(
            f"invalid {kind} name {name!r}: it may not start with '-' (it would read as a "
            "command-line option); start it with a letter or digit"
        )
    return name
