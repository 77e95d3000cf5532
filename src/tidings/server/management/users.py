"""``/api/v1/users``: the users of the broker's users file and their rights, read by an
operator (never the password or token hashes), and ``POST /api/v1/users/reload``, which
rereads the file as SIGHUP does (``server/reload.py``: connections whose user is gone or whose
credentials changed are closed, the others get the new rights)."""

from __future__ import annotations

import msgspec

from ...errors import BadRequest, Forbidden, TidingsError
from ..auth import Authenticator, User
from ..reload import reload_users
from .endpoints import Call, Endpoint


class UserRights(msgspec.Struct, kw_only=True):
    name: str
    credentials: list[str]  # "password", "token"
    publish: list[str]
    subscribe: list[str]
    admin: list[str]
    monitor: bool
    connections: int  # open connections authenticated as this user


class Users(msgspec.Struct, kw_only=True):
    authentication: bool  # False: the broker runs without --users-file (everyone may all)
    source: str  # the users file
    users: list[UserRights]


def _require_operator(user: User | None, what: str) -> None:
    if user is None or ">" in user.admin:
        return
    raise Forbidden(f"user {user.name!r} may not {what}: that needs admin on '>' in the users file")


def _users(call: Call) -> Users:
    auth = call.server.auth
    open_by: dict[str, int] = {}
    for conn in call.server.connections:
        if conn.user is not None:
            open_by[conn.user.name] = open_by.get(conn.user.name, 0) + 1
    return Users(
        authentication=auth.enabled,
        source=auth.source,
        users=[
            UserRights(
                name=u.name,
                credentials=[k for k in ("password", "token") if getattr(u, k)],
                publish=list(u.publish),
                subscribe=list(u.subscribe),
                admin=list(u.admin),
                monitor=u.monitor,
                connections=open_by.get(u.name, 0),
            )
            for u in sorted(auth.users.values(), key=lambda u: u.name)
        ],
    )


async def list_users(call: Call) -> Users:
    _require_operator(call.user, "read the users and their rights")
    return _users(call)


async def reload(call: Call) -> Users:
    _require_operator(call.user, "reload the users file")
    path = call.server.config.users_file
    if not path:
        raise BadRequest(
            "the broker runs without --users-file: there is nothing to reload (start it with "
            "--users-file FILE to require authentication)"
        )
    try:
        Authenticator.from_file(path)  # refuse a file that does not read, before applying it
    except TidingsError as exc:
        raise BadRequest(f"{exc.message}; the users loaded before stay in effect") from None
    if not reload_users(call.server):
        raise BadRequest(f"{path} could not be reloaded (see the broker's log)")
    return _users(call)


def endpoints(prefix: str) -> list[Endpoint]:
    return [
        Endpoint("GET", prefix + "/users", "The users file's users and their rights (no "
                 "secrets)", "users", list_users, Users),
        Endpoint("POST", prefix + "/users/reload", "Reread the users file (as SIGHUP): "
                 "connections of removed users or changed credentials are closed", "users",
                 reload, Users),
    ]  # fmt: skip
