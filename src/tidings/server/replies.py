"""Reply topics on the broker: names the broker gives, who may publish into them, who sees them.

- **Names.** A reply topic is named by the broker, in the reserved namespace
  ``_reply.<user tag>.<random>`` (``tidings.names.REPLY_PREFIX``), as NATS inboxes and
  RabbitMQ's direct reply-to are: a client cannot choose an ordinary name (that would let it
  squat a topic an operator creates later). The user tag (a hash of the user's name) lets a
  client reclaim its own reply topic by name after a reconnect; a name with another user's
  tag, or outside the namespace, gets a fresh name instead.
- **Publishing** into a reply topic is allowed to its owner, and to a connection that was
  delivered a request naming it in ``reply-to`` (one reply message per such delivery), as
  NATS' ``allow_responses``. Anyone else gets ``Forbidden``: replies cannot be forged.
- **Listings** (``list_topics``) never show another connection's reply topics, and
  ``topic_info``/``group_info``/``list_groups`` on one are refused.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .. import headers as h
from ..errors import Forbidden, InvalidName, NotFound
from ..model import Delivery, TopicSpec
from ..names import REPLY_PREFIX, is_reply_topic, validate_name

if TYPE_CHECKING:
    from .connection import ClientConnection

log = logging.getLogger("tidings.server")

REPLY_TOPIC_MAX_AGE = 3600.0  # seconds a reply waits in a reply topic at most
MAX_GRANTS = 10_000  # reply permissions one connection holds at most (the oldest go first)


def owner_of(conn: ClientConnection, topic: str) -> object:
    """The connection owning ``topic`` if it is a reply (temporary) topic, else None."""
    try:
        return conn.broker.topic_owner(topic)
    except NotFound:
        return None


def _tag(conn: ClientConnection) -> str:
    name = conn.user.name if conn.user is not None else ""
    return hashlib.sha256(b"tidings-reply-topic:" + name.encode()).hexdigest()[:12]


def create(conn: ClientConnection, wanted: str) -> str:
    """Create (or reclaim) a reply topic owned by ``conn``; returns the name the broker chose.
    ``wanted`` is only a request to reclaim: any other name is ignored."""
    broker = conn.broker
    prefix = f"{REPLY_PREFIX}{_tag(conn)}."
    if wanted.startswith(prefix) and len(wanted) > len(prefix) and _valid(wanted):
        owner = owner_of(conn, wanted)
        if owner is conn:
            return wanted
        if wanted not in {t.name for t in broker.list_topics()}:
            _make(conn, wanted)
            return wanted
    name = f"{prefix}{secrets.token_hex(12)}"
    _make(conn, name)
    return name


def _valid(name: str) -> bool:
    try:
        validate_name("topic", name)
    except InvalidName:
        return False
    return True


def _make(conn: ClientConnection, name: str) -> None:
    spec = TopicSpec(name=name, temporary=True, max_age=REPLY_TOPIC_MAX_AGE)
    conn.broker.create_topic(spec, owner=conn)


def grant(conn: ClientConnection, deliveries: Iterable[Delivery]) -> None:
    """Remember the reply topics the requests delivered to ``conn`` name (allow_responses)."""
    grants = conn.reply_grants
    for d in deliveries:
        reply_to = d.headers.get(h.REPLY_TO)
        if reply_to is not None and reply_to.startswith(REPLY_PREFIX):
            grants[reply_to] = grants.pop(reply_to, 0) + 1
            if len(grants) > MAX_GRANTS:
                del grants[next(iter(grants))]


def admit_publish(conn: ClientConnection, topic: str, count: int) -> None:
    """Allow ``count`` messages into the reply topic ``topic`` or raise Forbidden."""
    if owner_of(conn, topic) is conn:
        return
    grants = conn.reply_grants
    have = grants.get(topic, 0)
    if have < count:
        log.warning(
            "forbidden: connection %s (%s) published %d message(s) to reply topic %r with %d "
            "request(s) naming it delivered",
            conn.id, conn.peer, count, topic, have,
        )  # fmt: skip
        raise Forbidden(
            f"topic {topic!r} is a reply topic: only a connection that was delivered a "
            "request naming it in 'reply-to' may publish there, one reply per request"
        )
    if have == count:
        grants.pop(topic, None)  # (an empty publish takes nothing)
    else:
        grants[topic] = have - count


def visible(conn: ClientConnection, topic: str) -> bool:
    """False for another connection's reply topic (hidden from listings)."""
    return not is_reply_topic(topic) or owner_of(conn, topic) is conn


def refuse_foreign(conn: ClientConnection, topic: str, doing: str) -> None:
    """Raise Forbidden if ``topic`` is another connection's reply topic (one that does not
    exist is left to the operation, which says NotFound)."""
    owner = owner_of(conn, topic) if is_reply_topic(topic) else None
    if owner is not None and owner is not conn:
        log.warning(
            "forbidden: connection %s (%s) tried to %s reply topic %r of another",
            conn.id, conn.peer, doing, topic,
        )  # fmt: skip
        raise Forbidden(
            f"topic {topic!r} is another connection's reply topic: only its owner may "
            f"{doing} it (a responder publishes its reply there, once per request)"
        )
