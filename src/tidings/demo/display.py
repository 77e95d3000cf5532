"""What the demo shows while it runs: a live rich view on a terminal (queue depth, rate and a
progress bar per consumer group, and the story so far), plain lines when stdout is not a
terminal, nothing with ``--json``."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text


@dataclass
class GroupView:
    """One consumer group as the monitor last saw it."""

    name: str
    total: int = 0  # messages the topic took (the demo counts its receipts)
    done: int = 0  # acknowledged or dead-lettered (total - lag)
    ready: int = 0
    in_flight: int = 0
    delayed: int = 0
    dead: int = 0
    members: int = 0
    rate: float = 0.0  # settled per second, measured
    _last: tuple[float, int] = field(default=(0.0, 0))

    def update(self, total: int, lag: int, ready: int, in_flight: int, delayed: int,
               dead: int, members: int) -> None:  # fmt: skip
        now = time.monotonic()
        # a message counts in a group's lag before its publisher has its receipt
        self.total, self.done = total, min(total, max(0, total - lag))
        self.ready, self.in_flight, self.delayed = ready, in_flight, delayed
        self.dead, self.members = dead, members
        then, before = self._last
        if then and now - then >= 0.5:
            self.rate = 0.6 * self.rate + 0.4 * max(0, self.done - before) / (now - then)
            self._last = (now, self.done)
        elif not then:
            self._last = (now, self.done)


class Display:
    def __init__(self, *, quiet: bool, interactive: bool | None = None) -> None:
        self.quiet = quiet
        self.interactive = sys.stdout.isatty() if interactive is None else interactive
        width = None if self.interactive else 120  # a log file: do not wrap at 80
        self.console = Console(file=sys.stdout, highlight=False, width=width)
        self.groups: dict[str, GroupView] = {}
        self.story: list[str] = []
        self.started = time.monotonic()
        self._live: Live | None = None
        self._last_line = 0.0

    def __enter__(self) -> Display:
        if not self.quiet and self.interactive:
            self._live = Live(
                get_renderable=self.render, console=self.console, refresh_per_second=8,
                transient=False,
            )  # fmt: skip
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.__exit__(None, None, None)
            self._live = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def say(self, text: str) -> None:
        """A line of the story."""
        line = f"{self.elapsed():5.1f}s  {text}"
        self.story.append(line)
        if not self.quiet and self._live is None:
            self.console.print(line, markup=False, soft_wrap=True)  # a log: never wrapped

    def tick(self) -> None:
        """Called after every poll: prints a progress line every 2 s when not live."""
        if self.quiet or self._live is not None or not self.groups:
            return
        now = time.monotonic()
        if now - self._last_line < 2.0:
            return
        self._last_line = now
        parts = [
            f"{g.name} {g.done:,}/{g.total:,} (queued {g.ready:,}, {g.rate:,.0f}/s)"
            for g in self.groups.values()
        ]
        line = f"{self.elapsed():5.1f}s    " + "; ".join(parts)
        self.console.print(line, markup=False, soft_wrap=True)

    def render(self) -> Group:
        table = Table(title="order.refunded: one group per service", title_justify="left",
                      header_style="bold", expand=False)  # fmt: skip
        for col in ("group", "members", "queued", "leased", "delayed", "dead", "rate/s",
                    "progress", "done"):  # fmt: skip
            left = col in ("group", "progress")
            table.add_column(col, justify="left" if left else "right", no_wrap=True)
        for g in self.groups.values():
            bar = ProgressBar(total=max(g.total, 1), completed=g.done, width=16)
            table.add_row(
                g.name, str(g.members), f"{g.ready:,}", f"{g.in_flight:,}", f"{g.delayed:,}",
                f"{g.dead:,}", f"{g.rate:,.0f}", bar, f"{g.done:,}/{g.total:,}",
            )  # fmt: skip
        story = Text("\n".join(self.story[-9:]), style="dim")
        return Group(table, story)
