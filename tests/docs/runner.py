"""Run a chain of documented blocks (tests/docs/blocks.py) as a new user would.

Python blocks are executed in-process, in order, in one namespace per chain; a block written
with top-level ``await`` (as in ``python -m asyncio``) is run on a new event loop. Shell blocks
run with ``bash -e -o pipefail`` in the chain's working directory (a temp dir), with the
virtualenv's ``tidings`` first on ``PATH``. Every block is run with ``$TIDINGS_URL`` set to the
target broker, and the docs' default address ``tidings://127.0.0.1:7420`` is replaced by it, so
a page that names the default address talks to the test's broker.

A ``serves`` block is a server: it is started in a child process (a Python block as a script, a
shell block with bash), must still run ``SETTLE`` seconds after its first line of output, and
must stop with exit code 0 on SIGTERM. Servers bind port 0 (``--port 7420`` is rewritten,
``$TIDINGS_PORT=0``) and no HTTP port. A Python block that continues a serving block sees its
definitions: the runner executes the serving block without its final ``svc.run()``-like
statement.
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .blocks import ROOT, Block

DEFAULT_URL = "tidings://127.0.0.1:7420"
READY_TIMEOUT = 20.0  # a server that prints nothing is taken as up after this
SETTLE = 1.0  # seconds a server must keep running after its first line
SHELL_TIMEOUT = 60.0
PORT = re.compile(r"--port[ =]7420\b")


@dataclass
class Target:
    """Where a chain runs: the broker URL and the environment its commands see."""

    url: str
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)

    def environ(self) -> dict[str, str]:
        env = {**os.environ, **self.env, "TIDINGS_URL": self.url}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH")) if p
        )
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env.update(TIDINGS_PORT="0", TIDINGS_HTTP="off", TIDINGS_DATA=str(self.cwd / "data"))
        env.setdefault("PYTHONUNBUFFERED", "1")
        env["COLUMNS"] = "120"
        return env


class BlockFailed(AssertionError):
    pass


def localize(code: str, target: Target) -> str:
    return PORT.sub("--port 0", code.replace(DEFAULT_URL, target.url))


def run_chain(chain: list[Block], target: Target) -> str:
    """Run the chain's blocks in order; returns what they printed. Raises BlockFailed."""
    namespace: dict[str, object] = {"__name__": "__main__"}
    python_so_far: list[str] = []
    output = []
    old_cwd = os.getcwd()
    old_env = dict(os.environ)
    os.chdir(target.cwd)
    os.environ.update({k: v for k, v in target.environ().items() if k.startswith("TIDINGS_")})
    try:
        for block in chain:
            code = localize(block.code, target)
            if block.lang == "python" and block.has("serves"):
                output.append(serve([sys.executable, "-c", "\n".join([*python_so_far, code])],
                                    block, target))  # fmt: skip
                code = without_final_run(code)
                if code.strip():
                    exec_python(code, block, namespace)
                python_so_far.append(code)
            elif block.lang == "python":
                exec_python(code, block, namespace)
                python_so_far.append(code)
            elif block.has("serves"):
                output.append(serve(["bash", "-e", "-c", code], block, target))
            else:
                output.append(run_shell(code, block, target))
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)
    return "".join(output)


def exec_python(code: str, block: Block, namespace: dict[str, object]) -> None:
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    compiled = compile(code, block.id, "exec", flags=flags, dont_inherit=True)
    result = eval(compiled, namespace)
    if asyncio.iscoroutine(result):
        asyncio.run(result)


def without_final_run(code: str) -> str:
    """The code without its last statement when that is a call of ``.run()`` (``svc.run()``)."""
    tree = ast.parse(code)
    last = tree.body[-1] if tree.body else None
    if (
        isinstance(last, ast.Expr)
        and isinstance(last.value, ast.Call)
        and isinstance(last.value.func, ast.Attribute)
        and last.value.func.attr == "run"
    ):
        lines = code.splitlines()
        return "\n".join(lines[: last.lineno - 1]) + "\n"
    return code


def run_shell(code: str, block: Block, target: Target) -> str:
    proc = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-x", "-c", code], cwd=target.cwd,
        env=target.environ(), capture_output=True, text=True, timeout=SHELL_TIMEOUT,
    )  # fmt: skip
    if proc.returncode != 0:
        raise BlockFailed(
            f"{block.id}: exit code {proc.returncode}\n{textwrap.indent(code, '    ')}\n"
            f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr (+ the commands run)\n"
            f"{proc.stderr[-3000:]}"
        )
    return proc.stdout


class Server:
    """A server started for a test, its output read as it comes. It counts as up once it printed
    its first line (servers log their start) and ``SETTLE`` seconds passed, or after
    ``READY_TIMEOUT`` seconds of silence; ``stop()`` signals it and returns its exit code."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True, start_new_session=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._spoke = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            self._spoke.set()
        self._spoke.set()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_up(self) -> bool:
        """True when it is up and still running (False: it ended by itself)."""
        self._spoke.wait(READY_TIMEOUT)
        deadline = time.monotonic() + SETTLE
        while time.monotonic() < deadline and self.proc.poll() is None:
            time.sleep(0.05)
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Signal it (and what it started) and wait; None when it did not stop within 30 s."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            return None
        finally:
            self._reader.join(5)
        return self.proc.returncode


def serve(command: list[str], block: Block, target: Target) -> str:
    server = Server(command, target.cwd, target.environ())
    up = server.wait_up()
    code = server.stop()
    if code is None:
        raise BlockFailed(f"{block.id}: did not stop within 30 s of SIGTERM\n{server.output}")
    if not up or code != 0:
        what = "ended by itself" if not up else "stopped on SIGTERM"
        raise BlockFailed(f"{block.id}: {what} with exit code {code}\n{server.output[-3000:]}")
    return server.output
