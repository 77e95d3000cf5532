"""`tidings pub` and `tidings sub` tell the user what is going on (issue #13): invalid JSON is
refused with what is wrong, a memory:// publish exits without asyncio's "Task was destroyed"
noise, and a `sub --count N` that runs out of messages says that it waits.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading

from tests.helpers.broker_process import SRC

from .conftest import run_process


def test_pub_refuses_a_json_like_body_that_is_not_json(cli):
    r = cli("pub", "t.badjson", '{"order": 42,}')
    assert r.code == 2
    assert "the body looks like JSON but is not valid: Expecting property name" in r.err
    assert "line 1 column 14" in r.err and "--raw" in r.err
    assert cli("topic", "info", "t.badjson").code != 0  # nothing was sent, nothing created
    r = cli("pub", "t.badjson", '{"order": 42,}', "--raw", "--json")
    assert r.code == 0 and r.json()["published"] == 1
    assert cli("pub", "t.badjson", "plain words", "--json").code == 0  # not JSON-like: bytes


def test_json_body_checks_any_body_and_stdin_lines_are_numbered(cli, monkeypatch):
    r = cli("pub", "t.jsonbody", "hello", "--json-body")
    assert r.code == 2 and "the body is not JSON (--json-body): Expecting value" in r.err
    assert cli("pub", "t.jsonbody", "42", "--json-body").code == 0
    monkeypatch.setattr("sys.stdin", io.StringIO('{"n": 1}\n{"n": 2\n'))
    r = cli("pub", "t.jsonbody", "-")
    assert r.code == 2 and "stdin line 2 looks like JSON but is not valid" in r.err


def test_pub_on_memory_exits_without_destroyed_tasks():
    done = run_process("pub", "t.mem", "hello", "--url", "memory://")
    assert done.returncode == 0, done.stderr
    assert "published 1 message(s) to t.mem" in done.stdout
    assert "Task was destroyed" not in done.stderr, done.stderr


def test_sub_count_without_timeout_says_it_waits(cli, broker):
    assert cli("pub", "t.wait", "first").code == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "tidings.cli", "sub", "t.wait", "--group", "g", "--count", "2",
         "--url", broker.url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )  # fmt: skip
    said = threading.Event()
    lines: list[str] = []

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "waiting for messages" in line:
                said.set()

    threading.Thread(target=read_stderr, daemon=True).start()
    try:
        assert said.wait(30), "".join(lines)
        assert (
            "waiting for messages on t.wait (group g; 1 of 2 received); Ctrl-C to stop, or give "
            "--timeout S"
        ) in "".join(lines)
        assert cli("pub", "t.wait", "second").code == 0
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 0 and "2 message(s) acknowledged" in out
