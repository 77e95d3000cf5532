"""Who is calling the HTTP side, and what they may do: the protocol port's users and rights.

Credentials come as ``Authorization: Bearer <token>`` or ``Authorization: Basic`` (user and
password, or an empty user and a token as the password), checked by the broker's
:class:`~tidings.server.auth.Authenticator` (the same users file, reloaded on SIGHUP).
Passwords are checked with scrypt off the event loop, then cached as on the protocol port.

Rights follow the users file: reading a topic needs some right on it, reading its messages
and groups needs ``subscribe``, publishing ``publish``, changing it ``admin``. Broker-wide
views (``/metrics``, the overview) need ``monitor = true`` or admin on every topic (``>``);
connections need admin on every topic. Without a users file everything is allowed (the HTTP
port binds to loopback by default).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import TYPE_CHECKING

from ...errors import Forbidden, NotFound, Unauthorized
from ...names import is_reply_topic
from ..auth import User
from ..auth import require as _require

if TYPE_CHECKING:
    from starlette.requests import Request

    from ..app import BrokerServer

_NEEDED = (
    "this broker requires authentication: send Authorization: Bearer <token>, or Basic "
    "with a user and password from the broker's users file"
)


def _credentials(request: Request) -> tuple[str | None, str | None]:
    header = request.headers.get("authorization")
    if not header:
        return None, None
    scheme, _, value = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and value.strip():
        return None, value.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("the Basic credentials are not base64 of user:password") from None
        user, sep, secret = decoded.partition(":")
        if not sep:
            raise Unauthorized("the Basic credentials must be user:password") from None
        return user or None, secret
    raise Unauthorized(f"unsupported Authorization scheme {scheme!r}: use Bearer or Basic")


async def authenticate(server: BrokerServer, request: Request) -> User | None:
    """The calling user (None when the broker has no users file); raises Unauthorized."""
    auth = server.auth
    if not auth.enabled:
        return None
    user, secret = _credentials(request)
    if secret is None:
        raise Unauthorized(_NEEDED)
    found = auth.cached(user, secret)
    if found is not None:
        return found
    return await asyncio.get_running_loop().run_in_executor(None, auth.verify, user, secret)


def who(request: Request) -> str:
    client = request.client
    return f"HTTP from {client.host}:{client.port}" if client else "HTTP"


def _everything(user: User) -> bool:
    return ">" in user.admin


def require_monitor(user: User | None, request: Request) -> None:
    if user is None or user.monitor or _everything(user):
        return
    raise Forbidden(
        f"user {user.name!r} may not read broker-wide metrics: set monitor = true for it in "
        "the users file (or give it admin on '>')"
    )


def require_operator(user: User | None, request: Request) -> None:
    if user is None or _everything(user):
        return
    raise Forbidden(
        f"user {user.name!r} may not see or close connections: that needs admin on '>' in "
        "the users file"
    )


def refuse_reply(topic: str) -> None:
    if is_reply_topic(topic):
        raise NotFound(
            f"{topic!r} is a reply topic: it belongs to the connection that made it and is not "
            "managed over HTTP"
        )


def may_see(user: User | None, topic: str) -> bool:
    return not is_reply_topic(topic) and (user is None or user.may_see(topic))


def require_some(user: User | None, request: Request, topic: str) -> None:
    refuse_reply(topic)
    if user is not None and not user.may_see(topic):
        _require(user, "subscribe", topic, who(request))


def require(user: User | None, request: Request, action: str, topic: str) -> None:
    refuse_reply(topic)
    _require(user, action, topic, who(request))


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def refuse_cross_site(request: Request) -> None:
    """A browser's request that changes something must come from the broker's own pages: a
    page of another site could otherwise make a logged-in browser (Basic credentials are
    remembered per origin) purge or redrive. Browsers name the page's origin in ``Origin``;
    clients that send none (curl, httpx, scripts) are not affected."""
    origin = request.headers.get("origin")
    if request.method in SAFE_METHODS or origin is None:
        return
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin != own:
        raise Forbidden(
            f"a {request.method} from a page of {origin} is refused: the management API only "
            "takes changes from the broker's own pages or from clients that send no Origin"
        )
