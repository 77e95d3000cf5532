"""What a connection's user may do: the permission checks of every operation, in one place.

Handlers call these before they touch the engine; an operation added later (redrive, replay)
reuses them, above all :func:`require_write_target` for any topic the broker will write to
on the user's behalf. Without a users file every check passes except the reply-topic rules
(see replies.py), which hold for everyone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import Forbidden
from ..headers import dead_letter_topic
from ..model import GroupSpec
from ..names import is_reply_topic
from . import replies
from .auth import require as _require

if TYPE_CHECKING:
    from .connection import ClientConnection


def who(conn: ClientConnection) -> str:
    return f"connection {conn.id} from {conn.peer}"


def require(conn: ClientConnection, action: str, topic: str) -> None:
    """Raise Forbidden (logged) unless the user may ``action`` ("publish", "subscribe" or
    "admin"; admin implies the other two) on ``topic``."""
    _require(conn.user, action, topic, who(conn))


def require_some(conn: ClientConnection, topic: str) -> None:
    """``topic_info``: some right on the topic (or its own reply topic)."""
    replies.refuse_foreign(conn, topic, "inspect")
    user = conn.user
    if user is not None and not user.may_see(topic) and not is_reply_topic(topic):
        require(conn, "subscribe", topic)  # raises Forbidden, logged


def require_subscribe(conn: ClientConnection, topic: str) -> None:
    """Subscribing to, or inspecting the groups of, ``topic``: the subscribe right, or the
    connection's own reply topic."""
    if is_reply_topic(topic):
        replies.refuse_foreign(conn, topic, "subscribe to")
        return
    require(conn, "subscribe", topic)


def require_write_target(conn: ClientConnection, topic: str, purpose: str) -> None:
    """The broker will publish into ``topic`` for this user (``purpose``: "dead-letter topic",
    "redrive target", ...): the user needs publish on it, and admin if it does not exist yet
    (the broker would create it). A reply topic is never such a target."""
    if is_reply_topic(topic):
        raise Forbidden(
            f"{topic!r} is a reply topic and cannot be a {purpose}: name an ordinary topic"
        )
    require(conn, "publish", topic)
    if topic not in conn.broker_topics():
        require(conn, "admin", topic)


def require_group_writes(conn: ClientConnection, spec: GroupSpec) -> None:
    """Declaring or joining a group: its dead-letter topic is written on the user's behalf.
    The default one (``<topic>.<group>.dlq``) is the group's own and needs no extra right; a
    chosen one needs :func:`require_write_target`."""
    chosen = spec.dead_letter_topic
    if chosen is not None and chosen != dead_letter_topic(spec.topic, spec.name):
        require_write_target(conn, chosen, "dead-letter topic")
