"""A user's own mypy sees tidings' types: the package ships a py.typed marker; ``connect``,
``Service``, ``@svc.on`` and ``@participant.command`` keep their signatures; a wrong call is
reported.

mypy runs in a subprocess on sample files in a temporary directory, with a config of its own
(not this repository's [tool.mypy]), so tidings is found the way a user's project finds it:
as an installed package.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import tidings

GOOD = """
    import tidings


    async def main() -> int:
        async with tidings.connect("memory://") as client:
            receipt = await client.publish("orders", b"body", key="order-42")
            return receipt.offset


    svc = tidings.Service("billing", "memory://")


    @svc.on("orders", concurrency=4)
    async def handle(body: bytes, ctx: tidings.Context) -> None:
        await ctx.publish("billed", body)


    def refund_saga(shop: tidings.Service) -> None:
        participant = tidings.Participant(shop)

        @participant.command("payment.refund")
        async def refund(cmd: dict[str, int], ctx: tidings.Context) -> dict[str, str]:
            return {"refund": "r-1"}

        reveal_type(refund)


    reveal_type(handle)
    reveal_type(tidings.connect)
"""

BAD = """
    import tidings

    svc = tidings.Service("billing", "memory://")


    async def main() -> None:
        async with tidings.connect("memory://") as client:
            await client.publish(42, b"body")


    @svc.on("orders", concurrency="many")
    async def handle(body: bytes) -> None: ...


    tidings.conect("memory://")
"""


def mypy(tmp_path: Path, source: str) -> tuple[int, str]:
    (tmp_path / "mypy.ini").write_text("[mypy]\nstrict = True\n")
    (tmp_path / "sample.py").write_text(textwrap.dedent(source))
    cache = str(tmp_path / ".mypy_cache")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            "mypy.ini",
            "--cache-dir",
            cache,
            "sample.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, done.stdout + done.stderr


def test_the_package_is_marked_typed() -> None:
    assert (Path(tidings.__file__).parent / "py.typed").is_file()


def test_a_users_strict_mypy_sees_the_signatures(tmp_path: Path) -> None:
    code, out = mypy(tmp_path, GOOD)
    assert code == 0, out
    # the decorator returns the handler as it was written, not Any
    assert 'Revealed type is "def (body: bytes, ctx: tidings.service.context.Context)' in out
    assert "-> tidings.client.asyncclient.AsyncClient" in out
    assert 'Revealed type is "def (cmd: dict[str, int], ctx:' in out


def test_a_users_mypy_reports_wrong_calls(tmp_path: Path) -> None:
    code, out = mypy(tmp_path, BAD)
    assert code == 1, out
    assert 'Argument 1 to "publish" of "AsyncClient" has incompatible type "int"' in out
    assert 'Argument "concurrency" to "on" of "Service" has incompatible type "str"' in out
    # the lazy loader (a module __getattr__) must not turn unknown names into Any
    assert 'Module has no attribute "conect"' in out
