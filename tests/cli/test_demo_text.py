"""The demo's text when it is not on a terminal (a CI log, a pipe): long story lines stay one
line, the dead-letter line ends cleanly, and the demo says its consumer costs are simulated.
The full demo run is tests/cli/test_commands.py::test_demo_reconciles."""

from __future__ import annotations

from tidings.demo.display import Display
from tidings.demo.story import dead_letter_line, simulated_costs_line

PYDANTIC_ERROR = "customer: Field required; sku: Field required; quantity: Field required; "


def test_story_lines_are_not_wrapped_off_a_terminal(capsys):
    long = "inventory, payment and notification joined their groups " + "x" * 150 + " end"
    show = Display(quiet=False, interactive=False)
    show.say(long)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.rstrip("\n").endswith(long)


def test_the_dead_letter_line_has_no_dangling_separator():
    line = dead_letter_line("orders.payment.dlq", "rejected", PYDANTIC_ERROR, limit=500)
    assert line.endswith("quantity: Field required")
    cut = dead_letter_line("orders.payment.dlq", "rejected", PYDANTIC_ERROR * 5)
    assert len(cut) <= 160 and cut.endswith("...") and not cut.endswith(";...")
    assert " Fiel..." not in cut  # cut at a word


def test_the_demo_says_its_costs_are_simulated():
    line = simulated_costs_line()
    assert line.startswith("consumer costs are simulated")
    assert "payment 4 ms per event (8 at once per worker)" in line


def test_the_demo_without_the_gateway_extra_says_so_and_publishes_every_refund(capsys, monkeypatch):
    """`pip install -e .` has no starlette/uvicorn/httpx: the demo still plays and reconciles,
    and says why no refund came in over HTTP."""
    from tidings.demo import http as gw
    from tidings.demo.run import DemoOptions, run_demo

    monkeypatch.setattr(gw, "missing", lambda: ["starlette", "uvicorn"])
    summary = run_demo(DemoOptions(orders=300, resend=20, quiet=False, interactive=False))
    out = capsys.readouterr().out
    assert "no gateway (starlette, uvicorn not installed: pip install 'tidings[gateway]')" in out
    assert "published 300 refunds on the bus" in out
    assert summary["http"] is None and summary["reconciled"] is True
