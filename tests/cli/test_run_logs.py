"""`tidings run` says what it does: a line when the service is connected and listening (with
its handlers), one when it stops and one when it has stopped; `--log-level` picks how much.

Before, `tidings run` printed nothing at all (no logging was configured), so a user could not
tell a running service from a hung one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from tests.helpers.broker_process import SRC

SERVICE = """
import tidings

svc = tidings.Service("echo")

@svc.on("echo.in")
async def handle(body: dict) -> None:
    pass

@svc.reply("echo.ask")
async def ask(body: dict) -> dict:
    return body
"""


def _run(tmp_path, *args: str) -> subprocess.Popen[str]:
    (tmp_path / "echosvc.py").write_text(textwrap.dedent(SERVICE))
    return subprocess.Popen(
        [sys.executable, "-m", "tidings.cli", "run", "echosvc:svc", *args],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )  # fmt: skip


def _stop_after(proc: subprocess.Popen[str], line_wanted: str, timeout: float = 30) -> str:
    """Read stderr until ``line_wanted`` appears, SIGTERM, then return all of stderr."""
    assert proc.stderr is not None
    lines: list[str] = []
    seen = threading.Event()

    def reader() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            lines.append(line)
            if line_wanted in line:
                seen.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        if not seen.wait(timeout):
            pytest.fail(f"no {line_wanted!r} line within {timeout}s:\n{''.join(lines)}")
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(20) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    thread.join(5)
    return "".join(lines)


def test_run_logs_its_lifecycle(tmp_path, broker):
    out = _stop_after(_run(tmp_path, "--url", broker.url), "listening")
    assert (
        f"service echo connected to {broker.url}; 2 handlers listening: "
        "echo.in (group echo, shared), echo.ask (replies)"
    ) in out
    assert "INFO    tidings.service:" in out
    assert "SIGTERM: stopping echo" in out
    assert "service echo stopped" in out


def test_log_level_warning_keeps_it_quiet(tmp_path, broker, cli):
    proc = _run(tmp_path, "--url", broker.url, "--log-level", "warning")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # serving: its group has a member
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
            proc.kill()
            proc.wait(5)
    assert proc.stderr is not None
    assert "tidings.service" not in proc.stderr.read()


def test_an_unknown_log_level_is_refused(tmp_path):
    proc = _run(tmp_path, "--url", "memory://", "--log-level", "loud")
    assert proc.wait(30) == 2
    assert proc.stderr is not None
    assert "unknown log level 'loud': use one of DEBUG, INFO, WARNING, ERROR" in proc.stderr.read()
