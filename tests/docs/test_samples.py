"""The inventory of the fenced code blocks of README.md and docs/**/*.md (issue #13).

Every block says what it is: ``python`` and ``bash`` blocks are code and are run (by
tests/docs/test_run.py, or by the page's own test module for the pages in OWNED), ``text``,
``toml``, ``yaml``, ``sql``, ... are data or output; a bare fence fails here. A code block that
does not run says why on the line above its fence (tests/docs/blocks.py lists the markers), so
a new block is run unless its author wrote down why not.
"""

from __future__ import annotations

import re

from .blocks import (
    DATA,
    MARKER,
    MARKERS,
    NEEDS_REASON,
    OWNED,
    PENDING,
    PYTHON,
    ROOT,
    SHELL,
    blocks,
    pages,
)

ALL = [b for page in pages() for b in blocks(page)]


def test_every_block_says_what_it_is():
    assert len(ALL) >= 60
    known = PYTHON | SHELL | DATA
    unknown = [f"{b.id}: fence language {b.lang!r}" for b in ALL if b.lang not in known]
    assert not unknown, "say what each block is (python, bash, text, ...):\n" + "\n".join(unknown)


def test_markers_are_well_formed():
    for b in ALL:
        unknown = set(b.markers) - MARKERS
        assert not unknown, f"{b.id}: unknown marker {unknown} (known: {sorted(MARKERS)})"
        for marker in set(b.markers) & NEEDS_REASON:
            assert b.reason, f"{b.id}: a {marker} marker needs its reason in parentheses"
        if b.has("xfail"):
            assert re.match(r"#\d+\b", b.reason), f"{b.id}: xfail names its issue: xfail #N (why)"
        if b.markers and not b.has("no-run"):
            assert b.lang in PYTHON | SHELL, f"{b.id}: only code can be {b.markers}"
    stray = [
        f"{page.relative_to(ROOT)}:{n}"
        for page in pages()
        for n, line in enumerate(page.read_text().splitlines(), 1)
        if re.match(r"<!--\s*(sample|docs)\b", line) and not MARKER.search(line)
    ]
    assert not stray, f"markers this runner does not read (write <!-- docs: ... -->): {stray}"


def test_no_run_blocks_are_few_and_listed():
    """The blocks that are not run, with their reasons: a short list, reviewed with the docs."""
    skipped = [f"{b.id}: {b.reason}" for b in ALL if b.has("no-run")]
    code = [b for b in ALL if b.lang in PYTHON | SHELL]
    assert len(skipped) <= len(code) // 4, "\n".join(skipped)


def test_owned_pages_have_their_tests():
    for page, test in OWNED.items():
        assert (ROOT / page).exists() and page in (ROOT / test).read_text(), (page, test)


def test_every_page_is_run():
    """A page is run by tests/docs/test_run.py unless its own test runs it (OWNED); PENDING
    lists the pages not run yet, and a page there with no code blocks left must leave it."""
    names = {str(p.relative_to(ROOT)) for p in pages()}
    assert set(OWNED) <= names
    assert PENDING.issubset(names)
    for page in PENDING:
        assert any(b.runs for b in blocks(ROOT / page)), f"{page}: nothing to run, leave PENDING"
