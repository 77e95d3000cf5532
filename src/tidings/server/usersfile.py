"""Editing the broker's users file (what ``tidings user add/passwd/remove/list`` does).

The file is read as :class:`~tidings.server.auth.Authenticator` reads it and written back whole
in the same TOML form (comments are not kept), atomically: a temporary file in the same
directory, fsynced, then renamed over the old one, so a broker rereading it on SIGHUP sees the
old file or the new one, never half of one. New files are created readable by their owner only.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import tomllib
from typing import Any

from ..errors import AlreadyExists, BadRequest, NotFound
from ..names import validate_name
from .auth import ACTIONS, ANONYMOUS, Authenticator, check_pattern

Entry = dict[str, Any]


def read_entries(path: str, *, missing_ok: bool = False) -> list[Entry]:
    """The ``[[users]]`` entries of ``path`` (validated as the broker validates them)."""
    if not os.path.exists(path):
        if missing_ok:
            return []
        raise NotFound(f"the users file {path} does not exist: add a user to create it")
    Authenticator.from_file(path)  # the broker's checks, with its messages
    with open(path, "rb") as f:
        return [dict(e) for e in tomllib.load(f).get("users", [])]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise BadRequest(f"cannot write {value!r} to a users file")


def render(entries: list[Entry]) -> str:
    parts = ["# tidings users file: edit with `tidings user add/passwd/remove`\n"]
    for entry in entries:
        lines = ["[[users]]"]
        for key in ("name", "password", "token", *ACTIONS, "monitor"):
            if entry.get(key) is not None and entry.get(key) is not False:
                lines.append(f"{key} = {_toml_value(entry[key])}")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def write_entries(path: str, entries: list[Entry]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    mode = os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o600
    fd, tmp = tempfile.mkstemp(prefix=".users-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(render(entries))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    Authenticator.from_file(path)  # what was written reads back


def find(entries: list[Entry], name: str, path: str) -> Entry:
    for entry in entries:
        if entry.get("name") == name:
            return entry
    raise NotFound(f"no user {name!r} in {path}: `tidings user list` shows the users")


def add(
    path: str,
    name: str,
    secret: dict[str, str],
    permissions: dict[str, list[str]],
    *,
    monitor: bool = False,
) -> None:
    """Add user ``name`` with ``secret`` ({"password": hash} or {"token": hash}; {} for the
    ``anonymous`` entry); ``monitor``: it may read the broker-wide metrics and overview over
    HTTP."""
    validate_name("user", name)
    if name == ANONYMOUS and (secret or monitor):
        raise BadRequest(
            f"{ANONYMOUS!r} is the entry of clients that send no credentials: it takes no "
            "password, token or --monitor (HTTP requests always need credentials)"
        )
    for action in ACTIONS:
        for pattern in permissions.get(action, []):
            try:
                check_pattern(pattern)
            except BadRequest as exc:
                raise BadRequest(f"--{action} {pattern!r}: {exc.message}") from None
    entries = read_entries(path, missing_ok=True)
    if any(e.get("name") == name for e in entries):
        raise AlreadyExists(
            f"user {name!r} is already in {path}: `tidings user passwd {name}` changes its "
            "secret, `tidings user remove` removes it"
        )
    entry: Entry = {"name": name, **secret}
    entry.update({a: permissions.get(a, []) for a in ACTIONS})
    if monitor:
        entry["monitor"] = True
    entries.append(entry)
    write_entries(path, entries)


def set_secret(path: str, name: str, secret: dict[str, str]) -> None:
    entries = read_entries(path)
    entry = find(entries, name, path)
    entry.pop("password", None)
    entry.pop("token", None)
    entry.update(secret)
    write_entries(path, entries)


def remove(path: str, name: str) -> None:
    entries = read_entries(path)
    entry = find(entries, name, path)
    entries.remove(entry)
    write_entries(path, entries)
