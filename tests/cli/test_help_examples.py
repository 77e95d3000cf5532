"""Every example in every ``tidings ... --help`` runs as written (issue #13).

The examples are read from the help texts themselves (the indented lines after ``Example:``),
so a new or changed example is run without touching this file. Each command's examples run in
order, as a user would paste them, with ``bash`` in a temp dir of their own, against a broker
started for that command (``$TIDINGS_URL``; the default address ``tidings://127.0.0.1:7420`` is
replaced by it). What an example needs that it does not make itself (a topic, a dead letter, a
module with a service, a users file, a PostgreSQL database) is made first by SETUP. A line
ending in ``&`` and every example of a command in SERVES is a server: it must still run after a
few seconds and stop with exit code 0 on SIGTERM; a line with ``--follow`` (until Ctrl-C) stops
on SIGINT with 0 or 130, the exit code of an interrupt. Fixed ports are rewritten to 0 (a free
one); BROKER_ARGS gives the test broker the options a command needs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
import typer
from tests.docs.runner import Server, Target, localize
from tests.helpers.broker_process import BrokerProcess
from tests.helpers.postgres import *  # noqa: F403 - postgres_server, pg_url
from typer._click.core import Context

import tidings
from tidings.cli.main import app

PORTS = re.compile(r"--(port|health-port)[ =](7420|7480|8080|8081)\b")
PG_EXAMPLE = re.compile(r"postgresql://app@db/\w+")  # what the examples call a database

SERVICE_MODULE = """\
import tidings

svc = tidings.Service("payment")


@svc.on("order.refunded")
async def refund(event: dict) -> None:
    pass
"""
ROUTES = """\
[[route]]
http = "GET /v1/stock/{sku}"
service = "stock"
topic = "stock.level"
"""


def examples() -> list[tuple[tuple[str, ...], list[str]]]:
    """(command path, its example lines) for every command and group of ``tidings``."""
    found = []

    def walk(command, path: tuple[str, ...]) -> None:
        ctx = Context(command, info_name=" ".join(["tidings", *path]))
        text = command.get_help(ctx)
        match = re.search(r"Examples?:\n\n(.*?)(?:\n\S|\Z)", text, re.S)
        if match:
            lines = [line.strip() for line in match.group(1).splitlines() if line.strip()]
            found.append((path, lines))
        if hasattr(command, "list_commands"):
            for name in command.list_commands(ctx):
                walk(command.get_command(ctx, name), (*path, name))

    walk(typer.main.get_command(app), ())
    return found


def dead_letter(
    topic: str, group: str, count: int = 1
) -> Callable[[str, Path, str | None], dict[str, str]]:
    """``count`` dead letters of ``group`` on ``topic``; the help's placeholder ids
    (``0f3a9c...``) stand for their ids."""

    def make(url: str, cwd: Path, pg: str | None) -> dict[str, str]:
        with tidings.connect_sync(url) as client:
            client.create_topic(topic)
            client.publish_many(topic, [tidings.Outgoing(b'{"n": %d}' % i) for i in range(count)])
            sub = client.subscribe(topic, group, prefetch=count)
            for _ in range(count):
                msg = sub.next(timeout=10)
                assert msg is not None
                msg.reject("malformed")
            sub.close()
            ids = [d.id for d in client.dead_letters(topic, group)]
        return dict(zip(["0f3a9c...", "0f3a9d..."], ids, strict=False))

    return make


def messages(topic: str, count: int) -> Callable[[str, Path, str | None], None]:
    def make(url: str, cwd: Path, pg: str | None) -> None:
        with tidings.connect_sync(url) as client:
            client.create_topic(topic, partitions=4)
            client.publish_many(topic, [tidings.Outgoing(b"%d" % i) for i in range(count)])

    return make


def traced_message(url: str, cwd: Path, pg: str | None) -> None:
    """order-17 published, consumed and acked on a traced topic, in trace 4bf92f35..."""
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with tidings.connect_sync(url) as client:
        client.create_topic("orders")
        client.publish("orders", b"{}", msg_id="order-17", headers={"traceparent": parent})
        sub = client.subscribe("orders", "billing")
        msg = sub.next(timeout=10)
        assert msg is not None
        msg.ack()
        sub.close()


def saga_instance(url: str, cwd: Path, pg: str | None) -> dict[str, str]:
    """A completed saga in ./orders.db (the shop of tests/sagas); ``3f1c...`` stands for it."""
    from tests.sagas.shop import OrderState, running_shop

    async def run_one() -> None:
        orders, shop = f"sqlite:///{cwd / 'orders.db'}", f"sqlite:///{cwd / 'shop.db'}"
        async with running_shop("helpex", orders, shop, url) as running:
            saga = await running.orchestrator.start(
                running.saga, OrderState(order="o-1"), id="3f1c-example"
            )
            await running.orchestrator.wait(saga, timeout=30)

    asyncio.run(run_one())
    if pg:  # the PostgreSQL examples read an orchestrator's (empty) tables
        from tidings.sagas.store import tables

        metadata = sa.MetaData()
        tables(metadata)
        engine = sa.create_engine(pg)
        metadata.create_all(engine)
        engine.dispose()
    return {"3f1c...": "3f1c-example"}


CLEANUPS: list[Callable[[], None]] = []  # what a Step left running, stopped after the examples


def running_saga(url: str, cwd: Path, pg: str | None) -> dict[str, str]:
    """The shop of tests/sagas serving ./orders.db (orchestrator, relays, participants) with a
    saga ``3f1c...`` stuck at its second step (its participant never answers), until the
    examples have run: the operator actions need an orchestrator to act."""
    import threading

    from tests.sagas.shop import OrderState, running_shop

    loop: asyncio.AbstractEventLoop | None = None
    stop = asyncio.Event()
    ready = threading.Event()

    async def serve() -> None:
        nonlocal loop
        loop = asyncio.get_running_loop()
        orders, shop = f"sqlite:///{cwd / 'orders.db'}", f"sqlite:///{cwd / 'shop.db'}"
        async with running_shop("helpops", orders, shop, url, timeout=300.0) as running:
            state = OrderState(order="o-1", hang="reserve")
            saga_id = await running.orchestrator.start(running.saga, state, id="3f1c-example")
            while (record := await running.orchestrator.get(saga_id)) and record.step != 1:
                await asyncio.sleep(0.05)
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()

    def cleanup() -> None:
        if loop is not None:
            loop.call_soon_threadsafe(stop.set)
        thread.join(30)

    CLEANUPS.append(cleanup)
    assert ready.wait(60), "the saga shop did not start"
    return {"3f1c...": "3f1c-example"}


def stopped_broker_data(url: str, cwd: Path, pg: str | None) -> None:
    with BrokerProcess(cwd / "tidings-data") as broker, tidings.connect_sync(broker.url) as c:
        c.create_topic("orders")
        c.publish("orders", b"kept")


def file(name: str, text: str) -> Callable[[str, Path, str | None], None]:
    def make(url: str, cwd: Path, pg: str | None) -> None:
        (cwd / name).write_text(text)

    return make


def jwks(url: str, cwd: Path, pg: str | None) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    public = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    x = base64.urlsafe_b64encode(public).rstrip(b"=").decode()
    key = {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1", "alg": "EdDSA"}
    (cwd / "jwks.json").write_text(json.dumps({"keys": [key]}))


Step = Callable[[str, Path, str | None], dict[str, str] | None]  # (broker url, cwd, PostgreSQL url)

# what each command's examples need first: shell lines, or Steps that may return
# {placeholder in the example: what it stands for}
SETUP: dict[tuple[str, ...], list[str | Step]] = {
    ("sub",): [messages("orders", 10)],
    ("trace",): [traced_message],
    ("sagas", "list"): [saga_instance],
    ("sagas", "show"): [saga_instance],
    ("sagas", "serve"): [saga_instance],
    ("sagas", "retry"): [running_saga],
    ("sagas", "compensate"): [running_saga],
    ("sagas", "abort"): [running_saga],
    ("stats",): ["tidings topic create orders", "tidings topic create payments"],
    ("run",): [file("payment.py", SERVICE_MODULE)],
    ("asyncapi",): [
        file("payment.py", SERVICE_MODULE),
        "tidings asyncapi payment:svc > asyncapi-1.0.json",
    ],
    ("gateway",): [file("routes.toml", ROUTES), jwks],
    ("topic", "info"): ["tidings topic create orders"],
    ("topic", "delete"): ["tidings topic create orders"],
    ("group",): [messages("orders", 1), "tidings sub orders --group billing --count 1"],
    ("group", "list"): [messages("orders", 1), "tidings sub orders --group billing --count 1"],
    ("group", "info"): [messages("orders", 1), "tidings sub orders --group billing --count 1"],
    ("group", "reset"): [messages("orders", 1), "tidings sub orders --group billing --count 1"],
    ("dlq",): [dead_letter("orders", "billing")],
    ("dlq", "list"): [dead_letter("orders", "billing")],
    ("dlq", "redrive"): [dead_letter("orders", "billing", count=3)],
    ("dlq", "purge"): [dead_letter("orders", "billing")],
    ("dlq", "replay"): [dead_letter("order.refunded", "payment")],
    ("user", "passwd"): [
        "echo 'a first long secret' | tidings user add billing --users-file users.toml"
        " --password-stdin"
    ],
    ("user", "remove"): ["tidings user add billing --users-file users.toml --token"],
    ("user", "list"): ["tidings user add billing --users-file users.toml --token"],
    ("store",): [stopped_broker_data],
    ("store", "check"): [stopped_broker_data],
    ("store", "repair"): [stopped_broker_data],
    ("outbox", "relay"): [
        "tidings outbox create-table --db sqlite:///app.db",
        "tidings outbox create-table --db postgresql://app@db/shop",
    ],
    ("outbox", "status"): [
        "tidings outbox create-table --db sqlite:///app.db",
        "tidings outbox create-table --db postgresql://app@db/shop",
    ],
    ("services",): ["tidings services register pricing http://127.0.0.1:9 --version 1.0.0"],
    ("services", "show"): ["tidings services register pricing http://127.0.0.1:9 --version 1.0.0"],
    ("services", "deregister"): [
        "tidings services register legacy-billing http://127.0.0.1:8080 --version 3.1.0"
    ],
}  # fmt: skip
# servers, and lines with --follow
SERVES = {("broker",), ("run",), ("gateway",), ("outbox", "relay"), ("sagas", "serve")}
BROKER_ARGS = {("trace",): ["--trace", ">"]}  # the test broker's options, per command
NOT_RUN = {  # command: why its examples are not run here, and what runs them instead
    ("bench",): "benchmarks of minutes; tests/benchmarks/test_smoke.py runs tidings bench --smoke",
    ("demo",): "about a minute; tests/cli/test_commands.py::test_demo_reconciles runs it",
}
EXAMPLES = examples()


def test_every_command_has_examples_and_the_lists_are_current():
    paths = {path for path, _ in EXAMPLES}
    assert len(paths) >= 40
    for listed in (NOT_RUN, SERVES, SETUP, BROKER_ARGS):
        assert set(listed).issubset(paths), set(listed) - paths


@pytest.mark.parametrize(
    ("path", "lines"),
    [pytest.param(p, ls, id=" ".join(("tidings", *p))) for p, ls in EXAMPLES if p not in NOT_RUN],
)
def test_help_examples_run(path, lines, tmp_path, request):
    needs_pg = any(PG_EXAMPLE.search(line) for line in [*lines, *map(str, SETUP.get(path, []))])
    pg = request.getfixturevalue("pg_url") if needs_pg else None
    args = BROKER_ARGS.get(path, [])
    with BrokerProcess(tmp_path / "broker", memory=True, args=args) as broker:
        cwd = tmp_path / "work"
        cwd.mkdir()
        target = Target(broker.url, cwd, env={"KEY": "a-shared-secret-of-32-bytes-or-more!"})

        placeholders: dict[str, str] = {}

        def prepare(line: str) -> str:
            line = PORTS.sub(lambda m: f"--{m.group(1)} 0", localize(line, target))
            for placeholder, value in placeholders.items():
                line = line.replace(placeholder, value)
            return PG_EXAMPLE.sub(pg, line) if pg else line

        try:
            for step in SETUP.get(path, []):
                if callable(step):
                    placeholders.update(step(broker.url, cwd, pg) or {})
                else:
                    run(prepare(step), target, what="setup")
            servers = []
            for line in map(prepare, lines):
                if line.endswith("&"):
                    servers.append((line, start(line.removesuffix("&"), target)))
                elif "--follow" in line:  # "until Ctrl-C": SIGINT, and the exit code of Ctrl-C
                    stop(line, start(line, target), signal.SIGINT, codes={0, 130})
                elif path in SERVES:
                    stop(line, start(line, target))
                else:
                    run(line, target, what="example")
            for line, proc in servers:
                stop(line, proc)
        finally:
            while CLEANUPS:
                CLEANUPS.pop()()


def run(line: str, target: Target, what: str) -> None:
    proc = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", line], cwd=target.cwd, env=target.environ(),
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert proc.returncode == 0, (
        f"{what}: {line}\nexit code {proc.returncode}\n--- stdout\n{proc.stdout[-2000:]}"
        f"\n--- stderr\n{proc.stderr[-2000:]}"
    )
    assert "Traceback" not in proc.stderr, f"{what}: {line}\n{proc.stderr[-2000:]}"


def start(line: str, target: Target) -> Server:
    return Server(["bash", "-c", f"exec {line}"], target.cwd, target.environ())


def stop(
    line: str,
    server: Server,
    sig: int = signal.SIGTERM,
    codes: frozenset[int] | set[int] = frozenset({0}),
) -> None:
    up = server.wait_up()
    code = server.stop(sig)
    out = server.output[-2000:]
    assert code is not None, f"server: {line}\ndid not stop within 30 s of signal {sig}\n{out}"
    assert up, f"server: {line}\nended by itself, exit code {code}\n{out}"
    assert code in codes, f"server: {line}\nexit code {code} on signal {sig}\n{out}"
