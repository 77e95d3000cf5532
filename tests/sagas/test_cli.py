"""``tidings sagas list`` and ``tidings sagas show ID`` read what the orchestrator stored:
statuses, the current and failed step, the history with timestamps."""

from __future__ import annotations

import json
import secrets

from tidings.cli.main import main

from .shop import OrderState, running_shop


def run(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


async def test_list_and_show(tmp_path, broker, capsys):
    orders, shop_db = f"sqlite:///{tmp_path / 'orders.db'}", f"sqlite:///{tmp_path / 'shop.db'}"
    async with running_shop(f"c{secrets.token_hex(3)}", orders, shop_db, broker.url) as shop:
        ok = await shop.orchestrator.start(shop.saga, OrderState(order="o-1"), id="ok-1")
        bad = await shop.orchestrator.start(
            shop.saga, OrderState(order="o-2", fail="book"), id="bad-1"
        )
        await shop.orchestrator.wait(ok, timeout=30)
        await shop.orchestrator.wait(bad, timeout=30)

    code, out, _ = run(capsys, "sagas", "list", "--db", orders, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["counts"] == {"completed": 1, "compensated": 1}
    assert {s["id"]: s["status"] for s in data["sagas"]} == {"ok-1": "completed",
                                                             "bad-1": "compensated"}  # fmt: skip
    code, out, _ = run(capsys, "sagas", "list", "--db", orders, "--status", "compensated")
    assert code == 0 and "bad-1" in out and "ok-1" not in out and "book" in out

    code, out, _ = run(capsys, "sagas", "show", "bad-1", "--db", orders, "--json")
    shown = json.loads(out)
    assert shown["status"] == "compensated" and shown["failed_step"] == "book"
    assert "refused for o-2" in shown["error"]
    assert [s["status"] for s in shown["steps"]] == ["compensated", "compensated", "failed"]
    events = [(e["step"], e["event"]) for e in shown["events"]]
    assert [s for s, e in events if e == "compensated" and s] == ["reserve", "charge"]
    assert events[-1] == (None, "compensated")
    assert all(isinstance(e["at"], float) for e in shown["events"])
    code, out, _ = run(capsys, "sagas", "show", "ok-1", "--db", orders)
    assert code == 0 and "completed" in out and "history" in out and "step-done" in out

    code, _, err = run(capsys, "sagas", "show", "nope", "--db", orders)
    assert code == 4 and "no saga 'nope'" in err
    code, _, err = run(capsys, "sagas", "list", "--db", shop_db)
    assert code == 2 and "no saga table" in err
    code, _, err = run(capsys, "sagas", "list", "--db", orders, "--status", "weird")
    assert code == 2 and "--status must be one of" in err


def test_an_unreachable_database_is_named_without_a_traceback(capsys):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = run(
        capsys, "sagas", "list", "--db", f"postgresql://app:secret@127.0.0.1:{port}/orders"
    )
    assert code == 8  # TransportUnavailable
    assert f"cannot reach the database postgresql://app:***@127.0.0.1:{port}/orders" in err
    assert "secret" not in err and "Traceback" not in err
