"""SIGTERM stops a running service gracefully: in-flight work finishes, then it exits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = Path(__file__).with_name("sigterm_child.py")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_finishes_in_flight_work_then_exits():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.Popen(
        [sys.executable, str(CHILD)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "handling"
        proc.send_signal(signal.SIGTERM)
        rest = proc.stdout.read().split()
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
    assert rest == ["finished", "stopped"]
