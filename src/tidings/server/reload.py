"""Reloading the users file while the broker runs (``kill -HUP <pid>``), as nats-server does.

The new file replaces the old one only if it reads cleanly; otherwise the error is logged and
the users in effect stay. Then every open connection is brought in line with it:

- a connection whose user was removed, or whose password or token changed, is closed with
  ``Forbidden`` (it must connect again with valid credentials);
- a connection still authenticating (its scrypt check in flight) is checked again against
  the new users when that check ends (handlers._authenticate compares the generation);
- otherwise the connection gets the user's new permissions: publish checks start afresh, and
  a subscription on a topic the user may no longer subscribe to, or whose group's chosen
  dead-letter topic it may no longer publish to, is ended (``SUB_CLOSED`` with
  ``Forbidden``). A connection's own reply topics stay its own.

MQTT connections (``server.mqtt``) the same way: a removed user's or changed credentials'
get DISCONNECT 0x87 (3.1.1: a close); the others the new rights, with their subscriptions
on topics no longer allowed ended (``Session.enforce_rights``). Offline persistent sessions
are checked when they resume.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..errors import Forbidden, TidingsError
from ..names import is_reply_topic
from ..protocol import constants as c
from ..protocol.messages import SubClosed
from . import rights
from .auth import Authenticator
from .mqtt.codec import NOT_AUTHORIZED as MQTT_NOT_AUTHORIZED

if TYPE_CHECKING:
    from .app import BrokerServer
    from .connection import ClientConnection

log = logging.getLogger("tidings.server")


def reload_users(server: BrokerServer) -> bool:
    """Read ``--users-file`` again and apply it; False (and logged) if it could not be used."""
    path = server.config.users_file
    if not path:
        log.warning("reload: the broker runs without --users-file; nothing to reload")
        return False
    try:
        auth = Authenticator.from_file(path)
    except TidingsError as exc:
        log.error("reload: %s; the users loaded before stay in effect", exc.message)
        return False
    server.auth = auth
    closed = updated = ended = pending = 0
    for conn in list(server.connections):
        old = conn.user
        if old is None:
            # still authenticating: that check runs again against these users when it ends
            pending += conn.authenticating is not None
            continue
        new = auth.users.get(old.name)
        if new is None or (new.password, new.token) != (old.password, old.token):
            why = "was removed" if new is None else "has new credentials"
            conn.fail(Forbidden(f"user {old.name!r} {why} (users file reloaded): connect again"))
            conn.abort()
            closed += 1
            continue
        conn.user = new
        conn.may_publish.clear()
        ended += _end_forbidden_subscriptions(conn)
        updated += 1
    if server.mqtt is not None:
        for mqtt in list(server.mqtt.connections):
            old = mqtt.user
            if old is None or mqtt.closed:  # still authenticating: checked again at its end
                pending += mqtt.authenticating
                continue
            new = auth.users.get(old.name)
            if new is None or (new.password, new.token) != (old.password, old.token):
                why = "was removed" if new is None else "has new credentials"
                mqtt.refuse(MQTT_NOT_AUTHORIZED, f"user {old.name!r} {why} (users file reloaded)")
                closed += 1
                continue
            mqtt.user = new
            mqtt.may_publish = None  # checked again on the new rights
            ended += mqtt.session.enforce_rights(new)
            updated += 1
    log.info(
        "reload: %d users from %s; %d connections updated, %d closed, %d subscriptions ended, "
        "%d still authenticating (checked against the new users)",
        len(auth.users),
        path,
        updated,
        closed,
        ended,
        pending,
    )
    return True


def _end_forbidden_subscriptions(conn: ClientConnection) -> int:
    user = conn.user
    assert user is not None
    ended = 0
    for sub_id, member in list(conn.members.items()):
        topic = member.spec.topic
        try:
            rights.require_group_writes(conn, member.spec)  # its dead-letter topic, if chosen
            allowed = is_reply_topic(topic) or user.may("subscribe", topic)  # reply: its own
            why = f"may no longer subscribe to {topic!r}"
        except Forbidden as exc:
            allowed, why = False, f"may no longer have its dead letters written: {exc.message}"
        if allowed:
            continue
        del conn.members[sub_id]
        try:
            conn.broker.leave(member.member_id)  # un-acked deliveries go back to the group
        except TidingsError:
            pass
        reason = f"user {user.name!r} {why} (users file reloaded)"
        conn.write(c.SUB_CLOSED, c.NO_REPLY, SubClosed(sub_id, Forbidden.code, reason))
        ended += 1
    return ended
