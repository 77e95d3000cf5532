"""The inventory of README.md's and docs/*.md's fenced code blocks (issue #13, first step).

Every block says what it is: ``python`` and ``bash`` blocks are code, ``text``, ``toml``,
``yaml``, ... are data or output, and a bare fence is refused. A block that is not meant to run
carries a marker on the line above its fence (an HTML comment, see tests/docs/blocks.py):
``<!-- docs: no-run (why) -->``, ``<!-- docs: serves -->`` or ``<!-- docs: xfail #N (why) -->``;
a marker needs its reason. Pages whose blocks are run by their own tests are listed in OWNED.
Executing the blocks on memory:// and a real broker is the next step (not done yet).
"""

from __future__ import annotations

from .blocks import DATA, PYTHON, ROOT, SHELL, blocks, pages

OWNED = {
    "docs/discovery.md": "tests/discovery/test_docs.py",
    "docs/gateway.md": "tests/gateway/test_docs.py",
    "docs/operations.md": "tests/management/test_docs.py",
    "docs/resilience.md": "tests/resilience/test_docs.py",
}
ALL = [b for page in pages() for b in blocks(page) if b.page not in OWNED]


def test_every_block_says_what_it_is():
    assert len(ALL) >= 25
    for b in ALL:
        assert b.lang in PYTHON | SHELL | DATA, f"{b.id}: fence language {b.lang!r} (use text?)"
        if b.marker:
            assert b.reason or b.marker == "serves", f"{b.id}: a {b.marker} marker needs a reason"


def test_owned_pages_have_their_tests():
    for page, test in OWNED.items():
        assert (ROOT / page).exists() and page in (ROOT / test).read_text(), (page, test)
