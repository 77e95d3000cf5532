"""`tidings stats` on a terminal of 80 columns: the group table's twelve columns squeezed its
headers to "m…" and "re…"; a table that does not fit is now one block per row, every value
named, wrapped between values."""

from __future__ import annotations

from rich.console import Console

from tidings.cli.stats import GROUP_COLUMNS, render

GROUP = {
    "group": "billing", "mode": "shared", "members": 2, "ready": 1200, "in_flight": 16,
    "delayed": 3, "lag": 1219, "dead_lettered": 1, "deliver_rate": 250.0, "ack_rate": 248.5,
    "oldest_ready_age": 4.2,
}  # fmt: skip
SNAP = {
    "topics": [
        {"topic": "orders", "partitions": 4, "messages": 5000, "bytes": 1 << 20,
         "publish_rate": 300.0, "groups": [GROUP]}
    ]
}  # fmt: skip


def _shown(width: int) -> str:
    console = Console(width=width, record=True, force_terminal=True, color_system=None)
    console.print(render(SNAP, console.width))
    return console.export_text()


def test_narrow_terminal_names_every_value_unsqueezed():
    text = _shown(80)
    assert "…" not in text
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "orders / billing: mode shared  members 2  ready 1,200" in text
    for column in GROUP_COLUMNS[2:]:
        assert column in text


def test_wide_terminal_keeps_the_table():
    text = _shown(160)
    header = next(line for line in text.splitlines() if "members" in line)
    assert all(column in header for column in GROUP_COLUMNS)
