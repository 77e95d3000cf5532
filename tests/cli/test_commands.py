"""Version, help texts, errors and exit codes, broker, run/asyncapi/bench, and the demo."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import typer

import tidings
from tidings.cli.main import main

from .conftest import run_process

COMMANDS = [
    [], ["broker"], ["pub"], ["sub"], ["topic"], ["topic", "create"], ["topic", "list"],
    ["topic", "info"], ["topic", "delete"], ["group"], ["group", "list"], ["group", "info"],
    ["group", "reset"], ["dlq"], ["dlq", "list"], ["dlq", "replay"], ["dlq", "redrive"],
    ["dlq", "purge"], ["stats"], ["trace"], ["demo"],
    ["run"], ["asyncapi"], ["bench"], ["user"], ["user", "add"], ["user", "passwd"],
    ["user", "remove"], ["user", "list"], ["store"], ["store", "check"], ["store", "repair"],
]  # fmt: skip


def test_version():
    r = run_process("--version", timeout=30)
    assert r.returncode == 0
    assert r.stdout.strip() == f"tidings {tidings.__version__}"


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "tidings")
def test_help_has_an_example(command, capsys):
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Example" in out and "tidings " in out


def test_user_errors_exit_with_the_error_code(cli):
    r = cli("topic", "info", "no.such.topic")
    assert r.code == 4 and "does not exist" in r.err and "Traceback" not in r.err
    r = cli("topic", "create", "bad name!")
    assert r.code == 2 and "invalid" in r.err.lower()
    r = cli("pub", "t.x", "b", "--header", "novalue")
    assert r.code == 2 and "key=value" in r.err
    r = cli("--url", "tidings://127.0.0.1:1", "topic", "list")
    assert r.code == 8 and "broker" in r.err.lower()
    r = cli("--url", "ftp://x", "topic", "list")
    assert r.code == 2 and "unknown transport" in r.err
    r = cli("broker", "--fsync", "sometimes")
    assert r.code == 2
    r = cli("topic", "nope")
    assert r.code == 2


def test_broker_takes_every_option_of_the_server():
    """`tidings broker` and `python -m tidings.server` have one option set: the server's."""
    from tidings.cli.main import app
    from tidings.server.config import OPTIONS, flags_of, parser

    command = typer.main.get_command(app).commands["broker"]
    cli_flags = {flag for param in command.params for flag in param.opts}
    server_flags = {flag for a in parser()._actions for flag in a.option_strings} - {"-h", "--help"}
    assert server_flags == {f for name in OPTIONS for f in flags_of(name)}
    assert server_flags <= cli_flags
    for needed in ("--users-file", "--tls-cert", "--tls-key", "--tls-client-ca",
                   "--handshake-timeout", "--frame-timeout", "--max-batch",
                   "--memory-high-watermark", "--disk-free-limit"):  # fmt: skip
        assert needed in cli_flags


def test_broker_command_runs_and_stops(tmp_path):
    from tidings.server.auth import hash_token

    users = tmp_path / "users.toml"
    users.write_text(f'[[users]]\nname = "ops"\ntoken = "{hash_token("t0ken")}"\nadmin = [">"]\n')
    env = {**os.environ, "PYTHONPATH": run_process.__globals__["SRC"].as_posix()}
    env["TIDINGS_FRAME_TIMEOUT"] = "5"  # an option from the environment, as documented
    proc = subprocess.Popen(
        [sys.executable, "-m", "tidings.cli", "broker", "--port", "0", "--memory",
         "--data", str(tmp_path), "--log-level", "info", "--users-file", str(users),
         "--max-batch", "500", "--handshake-timeout", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        url = None
        while time.monotonic() < deadline and url is None:
            line = proc.stdout.readline()
            match = re.search(r"listening on (tidings://\S+)", line)
            url = match.group(1) if match else None
        assert url, "the broker did not start"
        with pytest.raises(tidings.errors.Unauthorized), tidings.connect_sync(url) as client:
            client.list_topics()
        with tidings.connect_sync(url.replace("tidings://", "tidings://t0ken@")) as client:
            assert client.list_topics() == []
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


SERVICE = """
import tidings

svc = tidings.Service("echo")

@svc.on("echo.in", idempotent=False)
async def handle(body: dict) -> None:
    pass
"""


def test_asyncapi_and_run(tmp_path, broker, cli, monkeypatch):
    (tmp_path / "echosvc.py").write_text(textwrap.dedent(SERVICE))
    monkeypatch.chdir(tmp_path)
    r = cli("asyncapi", "echosvc:svc", "--format", "json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["asyncapi"].startswith("3.") and "echo.in" in json.dumps(doc["channels"])
    r = cli("asyncapi", "echosvc:nothing")
    assert r.code == 2 and "no attribute" in r.err
    proc = subprocess.Popen(
        [sys.executable, "-m", "tidings.cli", "--url", broker.url, "run", "echosvc:svc"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": run_process.__globals__["SRC"].as_posix()},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            groups = cli("group", "list", "--json").json()
            if any(g["topic"] == "echo.in" and g["members"] == 1 for g in groups):
                break
            time.sleep(0.2)
        else:
            pytest.fail("tidings run did not start the service")
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


def test_bench_hands_its_arguments_to_the_benchmark_runner(cli):
    """`tidings bench` is wired to tidings.benchmarking: its own options come through."""
    r = cli("bench", "--", "--help")
    assert r.code == 0, r.err
    assert "--quick" in r.out and "--engines" in r.out and "RabbitMQ" in r.out


def test_demo_reconciles():
    r = run_process("demo", "--orders", "2000", "--json", timeout=110)
    assert_demo_reconciled(r)


def assert_demo_reconciled(
    r: subprocess.CompletedProcess[str], broker_wide_dedup: bool = True
) -> None:
    """``tidings demo --orders 2000 --json`` ended with every refund handled once in effect.
    ``broker_wide_dedup``: the engine drops every re-send within the window, whichever
    connection sends it (not amqp://, whose dedup holds per connection: docs/transports.md A7)."""
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout)
    assert summary["reconciled"] is True
    # the progress counts what the topic took: the burst, the malformed, the late re-sends and
    # the early re-sends the engine let through (amqp:// dedups per connection and window:
    # on a loaded machine the burst can outlast the 3 s window)
    taken_early = 100 - summary["broker_duplicates"]
    assert summary["published"] == (
        2000 + summary["malformed"] + summary["resent_after_window"] + taken_early
    )
    assert summary["orders"] == 2000
    if broker_wide_dedup:
        assert summary["broker_duplicates"] == 100
    else:
        assert 0 <= summary["broker_duplicates"] <= 100
    for name in ("inventory", "payment", "notification"):
        s = summary["services"][name]
        assert s["handled"] == s["distinct_orders"] == 2000, (name, s)
        assert s["dead_lettered"] == summary["malformed"] == 3
        assert s["duplicates_skipped"] >= summary["resent_after_window"] > 0
    assert set(summary["services"]["payment"]["by_worker"]) <= {"payment-1", "payment-2"}
    assert summary["request_reply"]["state"] == "refunded"
    # the burst's last refunds came in over HTTP through the gateway, each accepted once
    http = summary["http"]
    assert http["route"] == "POST /refunds" and http["gateway"].startswith("http://127.0.0.1:")
    assert http["posted"] == http["accepted"] == http["handled_by_order_service"] == 300
    assert http["statuses"] == {"202": 300}
    # the refund saga: one completed, one compensated after its restock failed
    saga = summary["saga"]
    assert saga["reconciled"] is True
    ok, bad = saga["instances"]
    assert ok["status"] == "completed" and ok["effects"][-1] == "customer told"
    assert (bad["status"], bad["failed_step"]) == ("compensated", "restock")
    assert bad["steps"] == {"refund-payment": "compensated", "restock": "failed",
                            "notify": "pending"}  # fmt: skip
    assert bad["effects"] == ["refunded 54.50", "refund cancelled"]
