"""``tidings user add|passwd|remove|list``: edit the broker's users file (``--users-file``).

Secrets are stored hashed (scrypt for passwords, SHA-256 for generated tokens; see
docs/security.md). A password comes from ``--password-stdin``, ``$TIDINGS_PASSWORD`` or a
prompt; ``--token`` generates a random token and prints it once. A running broker picks the
change up on SIGHUP (``kill -HUP <pid>``). The user named ``anonymous`` has no secret: its
permissions are those of clients that send no credentials (without it they are refused).
"""

from __future__ import annotations

import getpass
import os
import secrets
import sys
from typing import Annotated, Any

import typer

from ..server import usersfile
from ..server.auth import ACTIONS, ANONYMOUS, hash_password, hash_token
from .output import JsonOpt, fail, print_json, show, state, table, user_errors

app = typer.Typer(
    help="""Add, change and remove the users of a broker's users file.

Example:

\b
    tidings user add orders --users-file users.toml --token --publish 'orders.*'
    tidings user list --users-file users.toml
""",
    no_args_is_help=True,
)

FileOpt = Annotated[
    str,
    typer.Option(
        "--users-file",
        envvar="TIDINGS_USERS_FILE",
        help="The users file (TOML) the broker reads [TIDINGS_USERS_FILE].",
        show_default=False,
    ),
]
TokenOpt = Annotated[
    bool, typer.Option("--token", help="Generate a random token (printed once) instead.")
]
StdinOpt = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from the first line of stdin."),
]
RELOAD = "a running broker applies it on SIGHUP (kill -HUP <pid>) or restart"


def _secret(name: str, token: bool, from_stdin: bool) -> tuple[dict[str, str], str | None]:
    """({"password": hash} or {"token": hash}, the new token to show or None); none for the
    ``anonymous`` entry."""
    if name == ANONYMOUS:
        if token or from_stdin:
            raise fail(
                f"{ANONYMOUS!r} holds the permissions of clients that send no credentials: it "
                "takes no --token or --password-stdin; give a user with a secret another name"
            )
        return {}, None
    if token:
        value = secrets.token_urlsafe(32)
        return {"token": hash_token(value)}, value
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif os.environ.get("TIDINGS_PASSWORD"):
        password = os.environ["TIDINGS_PASSWORD"]
    elif sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise fail("the passwords differ; nothing changed")
    else:
        raise fail(
            "no password: give --password-stdin, set TIDINGS_PASSWORD, run in a terminal to "
            "be asked, or use --token"
        )
    if len(password) < 8:
        raise fail("the password is too short: use at least 8 characters (or --token)")
    return {"password": hash_password(password)}, None


def _report(ctx: typer.Context, as_json: bool, what: str, name: str, token: str | None) -> None:
    if state(ctx, as_json=as_json).json:
        print_json({"user": name, "action": what, "token": token})
        return
    if token is not None:
        typer.echo(f"token for {name!r} (shown once, keep it secret): {token}")
    typer.echo(f"{what} user {name!r}; {RELOAD}")


@app.command(
    "add",
    help="""Add a user with a password or a generated token and its permissions (topic
patterns: '*' matches one '.'-separated segment, '>' one or more, as NATS subjects; admin
implies publish and subscribe). The name 'anonymous' adds no user but the permissions of
clients that send no credentials (native and MQTT; without it they are refused): no secret.

Example:

\b
    echo 'correct horse battery' | tidings user add billing --users-file users.toml --password-stdin --subscribe 'orders.*'
    tidings user add anonymous --users-file users.toml --subscribe 'status'
""",  # noqa: E501
)
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="User name.")],
    users_file: FileOpt,
    token: TokenOpt = False,
    password_stdin: StdinOpt = False,
    publish: Annotated[list[str] | None, typer.Option(help="Topics it may publish to.")] = None,
    subscribe: Annotated[list[str] | None, typer.Option(help="Topics it may consume.")] = None,
    admin: Annotated[list[str] | None, typer.Option(help="Topics it may administer.")] = None,
    monitor: Annotated[
        bool,
        typer.Option("--monitor", help="It may read /metrics and the overview (HTTP)."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    with user_errors():
        secret, shown = _secret(name, token, password_stdin)
        permissions = {"publish": publish or [], "subscribe": subscribe or [], "admin": admin or []}
        usersfile.add(users_file, name, secret, permissions, monitor=monitor)
    _report(ctx, as_json, "added", name, shown)


@app.command(
    "passwd",
    help="""Give a user a new password (or, with --token, a new token); its connections must
log in again.

Example:

\b
    echo 'another long secret' | tidings user passwd billing --users-file users.toml --password-stdin
""",  # noqa: E501
)
def passwd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="User name.")],
    users_file: FileOpt,
    token: TokenOpt = False,
    password_stdin: StdinOpt = False,
    as_json: JsonOpt = False,
) -> None:
    with user_errors():
        usersfile.find(usersfile.read_entries(users_file), name, users_file)
        if name == ANONYMOUS:
            raise fail(f"{ANONYMOUS!r} has no secret: it is what clients without credentials get")
        secret, shown = _secret(name, token, password_stdin)
        usersfile.set_secret(users_file, name, secret)
    _report(ctx, as_json, "changed the secret of", name, shown)


@app.command(
    "remove",
    help="""Remove a user; its connections are closed when the broker rereads the file.

Example:

\b
    tidings user remove billing --users-file users.toml
""",
)
def remove(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="User name.")],
    users_file: FileOpt,
    as_json: JsonOpt = False,
) -> None:
    with user_errors():
        usersfile.remove(users_file, name)
    _report(ctx, as_json, "removed", name, None)


@app.command(
    "list",
    help="""List the users of a users file and their permissions (never their secrets).

Example:

\b
    tidings user list --users-file users.toml
""",
)
def list_(ctx: typer.Context, users_file: FileOpt, as_json: JsonOpt = False) -> None:
    with user_errors():
        entries = usersfile.read_entries(users_file)
    rows: list[dict[str, Any]] = [
        {
            "name": e["name"],
            "secret": "password" if e.get("password") else "token" if e.get("token") else "none",
            **{a: list(e.get(a, [])) for a in ACTIONS},
            "monitor": bool(e.get("monitor")),
        }
        for e in entries
    ]
    columns = ["name", "secret", *ACTIONS, "monitor"]

    def cell(value: bool | str | list[str]) -> str:
        if isinstance(value, bool):
            return "yes" if value else ""
        return value if isinstance(value, str) else ", ".join(value)

    show(
        state(ctx, as_json=as_json),
        rows,
        lambda: table(
            None, columns, [[cell(r[c]) for c in columns] for r in rows]
        ),
    )  # fmt: skip
