"""Authentication and authorization of broker connections.

Off unless a users file is configured (``--users-file`` or ``TIDINGS_USERS_FILE``). The file
is TOML; secrets are stored hashed (edit it with ``tidings user add/passwd/remove``)::

    [[users]]
    name = "orders"
    password = "scrypt$16384$8$1$<salt>$<hash>"    # a password: slow hash (scrypt)
    publish = ["orders", "orders.*"]               # topic patterns: '*' one segment,
    subscribe = ["payments.>"]                     # '>' one or more (as NATS subjects)

    [[users]]
    name = "ops"
    token = "sha256$<hex>"                         # a random token: a fast hash is enough
    admin = [">"]                                  # create/delete topics and groups; implies
                                                   # publish and subscribe on those topics

    [[users]]
    name = "prometheus"
    token = "sha256$<hex>"
    monitor = true                                 # /metrics and the overview (HTTP) only

    [[users]]
    name = "anonymous"                             # no secret: the rights of clients that
    subscribe = ["status"]                         # send no credentials (native and MQTT)

A client sends a user and a secret (``tidings://orders:s3cret@host``) or a token alone
(``tidings://TOKEN@host``). Comparisons use :func:`hmac.compare_digest`, and every attempt that
names a user costs one scrypt, whether the user exists, has a password, or not (no user
enumeration by timing). Reply topics follow their own rules (``replies.py``).

A client that sends no credentials at all is refused, unless the file has the entry named
``anonymous`` (it takes no password or token, and no ``monitor``): then it is that user, with
its topic patterns, as mosquitto's anonymous ACL and RabbitMQ's anonymous login user. HTTP
requests always need credentials.

Patterns are matched segment by segment over the '.'-separated parts of a topic name: a
literal segment matches itself, ``*`` any one segment, ``>`` (last only) one or more.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import hmac
import logging
import secrets
import tomllib

from ..errors import BadRequest, Forbidden, Unauthorized

log = logging.getLogger("tidings.server")

ACTIONS = ("publish", "subscribe", "admin")
ANONYMOUS = "anonymous"  # the users-file entry for clients that send no credentials
SCRYPT_N, SCRYPT_R, SCRYPT_P = 16384, 8, 1
_FAILED = "authentication failed: check the user and the password or token"


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """The users-file form of a password: ``scrypt$n$r$p$salt$hash`` (base64)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(digest).decode()}"


def hash_token(token: str) -> str:
    """The users-file form of a (random, high-entropy) token: ``sha256$hex``."""
    return "sha256$" + hashlib.sha256(token.encode()).hexdigest()


def _check_password(stored: str, password: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=256 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def check_pattern(pattern: object) -> str:
    """Return ``pattern`` if it is a valid topic pattern, else raise BadRequest saying why."""
    if not isinstance(pattern, str) or not pattern:
        raise BadRequest(f"a topic pattern must be a non-empty string, got {pattern!r}")
    parts = pattern.split(".")
    for i, part in enumerate(parts):
        if not part:
            raise BadRequest(f"topic pattern {pattern!r} has an empty '.'-separated segment")
        if part == ">" and i != len(parts) - 1:
            raise BadRequest(f"topic pattern {pattern!r}: '>' may only be the last segment")
        if part not in ("*", ">") and ("*" in part or ">" in part):
            raise BadRequest(
                f"topic pattern {pattern!r}: '*' and '>' stand for whole segments ('*' one, "
                "'>' one or more, as NATS subjects); write e.g. 'orders.*' or 'orders.>'"
            )
    return pattern


@functools.lru_cache(maxsize=4096)
def _segments(pattern: str) -> tuple[str, ...]:
    return tuple(pattern.split("."))


def matches(pattern: str, topic: str) -> bool:
    """Whether ``topic`` matches ``pattern`` ('*' one segment, '>' the rest, one or more)."""
    want = _segments(pattern)
    have = topic.split(".")
    for i, part in enumerate(want):
        if part == ">":
            return len(have) > i
        if i >= len(have) or (part != "*" and part != have[i]):
            return False
    return len(have) == len(want)


@dataclasses.dataclass(frozen=True)
class User:
    name: str
    password: str | None = None  # scrypt$...
    token: str | None = None  # sha256$...
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    admin: tuple[str, ...] = ()
    monitor: bool = False  # may read the broker-wide metrics and overview (HTTP)

    def may(self, action: str, topic: str) -> bool:
        patterns = self.admin if action == "admin" else (*getattr(self, action), *self.admin)
        return any(matches(pattern, topic) for pattern in patterns)

    def may_see(self, topic: str) -> bool:
        return any(self.may(action, topic) for action in ACTIONS)


class Authenticator:
    """The users of one broker (``enabled`` is False without a users file: all allowed)."""

    def __init__(self, users: list[User] | None = None, source: str = "") -> None:
        self.users = {u.name: u for u in users or []}
        self.enabled = users is not None
        self.source = source
        self._tokens = {u.token: u for u in self.users.values() if u.token}
        # clients without credentials: this user's rights, or refused (None)
        self.anonymous = self.users.get(ANONYMOUS)
        self._verified: dict[tuple[str, str], User] = {}  # (user, sha256 of secret)

    @classmethod
    def from_file(cls, path: str | None) -> Authenticator:
        if not path:
            return cls()
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as exc:
            raise BadRequest(f"cannot read the users file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise BadRequest(f"the users file {path} is not valid TOML: {exc}") from exc
        users = []
        for i, entry in enumerate(data.get("users", [])):
            where = f"{path}: users[{i}]"
            unknown = set(entry) - {f.name for f in dataclasses.fields(User)}
            if unknown or not isinstance(entry.get("name"), str):
                raise BadRequest(f"{where}: needs a name; unknown keys {sorted(unknown)}")
            password, token = entry.get("password"), entry.get("token")
            if password and not str(password).startswith("scrypt$"):
                raise BadRequest(
                    f"{where}: password must be a hash: set it with `tidings user passwd`"
                )
            if token and not str(token).startswith("sha256$"):
                raise BadRequest(
                    f"{where}: token must be a hash: set it with `tidings user passwd --token`"
                )
            if entry["name"] == ANONYMOUS:
                if password or token or entry.get("monitor"):
                    raise BadRequest(
                        f"{where}: {ANONYMOUS!r} is the entry of clients that send no "
                        "credentials: it takes no password, token or monitor; give a user "
                        "with a secret another name"
                    )
            elif not password and not token:
                raise BadRequest(
                    f"{where}: give a password or a token (hashed); only the entry named "
                    f"{ANONYMOUS!r} (clients without credentials) has neither"
                )
            lists = {a: tuple(entry.get(a, ())) for a in ACTIONS}
            for action, patterns in lists.items():
                for pattern in patterns:
                    try:
                        check_pattern(pattern)
                    except BadRequest as exc:
                        raise BadRequest(f"{where}: {action}: {exc.message}") from None
            monitor = entry.get("monitor", False)
            if not isinstance(monitor, bool):
                raise BadRequest(f"{where}: monitor must be true or false, got {monitor!r}")
            users.append(User(entry["name"], password, token, **lists, monitor=monitor))
        return cls(users, path)

    def cached(self, user: str | None, secret: str | None) -> User | None:
        """The user if these credentials can be checked at once (token, seen before, or none
        at all with an ``anonymous`` entry)."""
        if secret is None:
            return self.anonymous if not user else None
        if not user:
            return self._by_token(secret)
        return self._verified.get((user, _digest(secret)))

    def verify(self, user: str | None, secret: str | None) -> User:
        """Check credentials (slow for passwords: run it off the event loop)."""
        if secret is None:
            if not user and self.anonymous is not None:
                return self.anonymous
            raise Unauthorized(
                "this broker requires authentication: give a user and password or a token "
                "(tidings://user:password@host, or the token/user options)"
            )
        if not user:
            found = self._by_token(secret)
            if found is None:
                _check_password(_DUMMY, secret)  # a failed token costs what a password does
                raise Unauthorized(_FAILED)
            return found
        entry = self.users.get(user)
        # One scrypt for every attempt that names a user: unknown, token-only and password
        # users cost the same, so timing does not tell which names exist.
        stored = entry.password if entry is not None and entry.password else _DUMMY
        by_password = _check_password(stored, secret) and stored is not _DUMMY
        by_token = (
            entry is not None
            and bool(entry.token)
            and hmac.compare_digest(hash_token(secret), entry.token or "")
        )
        if entry is None or not (by_password or by_token):
            raise Unauthorized(_FAILED)
        self._verified[(user, _digest(secret))] = entry
        return entry

    def _by_token(self, token: str) -> User | None:
        hashed = hash_token(token)
        for stored, user in self._tokens.items():
            if hmac.compare_digest(stored, hashed):
                return user
        return None


_DUMMY = "$".join(
    ("scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), "A" * 22 + "==", "A" * 43 + "=")
)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def require(user: User | None, action: str, topic: str, who: str) -> None:
    """Raise Forbidden (and log it) unless ``user`` may do ``action`` on ``topic``."""
    if user is None or user.may(action, topic):
        return
    log.warning("forbidden: user %r (%s) may not %s on topic %r", user.name, who, action, topic)
    raise Forbidden(
        f"user {user.name!r} may not {action} on topic {topic!r}: add a matching pattern to "
        f"its {action!r} list in the users file"
    )
