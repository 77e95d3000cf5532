"""Every documented line runs (issue #13): each chain of runnable blocks of README.md and
docs/**/*.md (tests/docs/blocks.py) is executed by tests/docs/runner.py.

Chains of Python blocks run twice, on ``memory://`` and on a real broker; chains with shell
blocks run on the real broker only (``memory://`` lives in one process); a chain marked
``nats-cluster`` runs on a real 3-node JetStream cluster only. The broker is started
for each page by the test (port 0, a temp data dir) and shared by that page's chains, as a reader
who follows the page top to bottom shares one broker. Python chains also run twice on it: a
sample must be re-runnable. Pages whose blocks are run by their own test module are in OWNED.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

import pytest
from tests.helpers.broker_process import BrokerProcess

from .blocks import OWNED, PENDING, ROOT, Block, chains, pages
from .runner import BlockFailed, Target, run_chain


def targets(chain: list[Block]) -> list[str]:
    if any(b.has("nats-cluster") for b in chain):
        return ["nats-cluster"]
    if all(b.lang == "python" for b in chain):
        return ["memory", "broker"]
    return ["broker"]


CASES = [
    pytest.param(chain, target, id=f"{chain[0].id}-{target}")
    for page in pages()
    if str(page.relative_to(ROOT)) not in {*OWNED, *PENDING}
    for chain in chains(page)
    for target in targets(chain)
]


class Brokers:
    """One broker per page, the last few kept running (a worker runs a page's chains in a row)."""

    def __init__(self, tmp: pytest.TempPathFactory, keep: int = 2) -> None:
        self.tmp, self.keep = tmp, keep
        self.running: OrderedDict[str, BrokerProcess] = OrderedDict()

    def url(self, page: str) -> str:
        if page not in self.running:
            broker = BrokerProcess(self.tmp.mktemp("docs-broker")).start()
            self.running[page] = broker
            while len(self.running) > self.keep:
                self.running.popitem(last=False)[1].stop()
        self.running.move_to_end(page)
        return self.running[page].url

    def stop(self) -> None:
        for broker in self.running.values():
            broker.stop()


@pytest.fixture(scope="session")
def brokers(tmp_path_factory) -> Iterator[Brokers]:
    b = Brokers(tmp_path_factory)
    yield b
    b.stop()


@pytest.mark.parametrize(("chain", "target"), CASES)
def test_chain_runs(chain, target, brokers, tmp_path, capsys, request):
    if target == "nats-cluster":
        url = request.getfixturevalue("nats_cluster").url
    elif target == "memory":
        url = "memory://"
    else:
        url = brokers.url(chain[0].page)
    xfail = [b for b in chain if b.has("xfail")]
    runs = 2 if all(b.lang == "python" and not b.has("serves") for b in chain) else 1
    for _ in range(runs):
        if xfail:
            with pytest.raises(BlockFailed):
                run_chain(chain, Target(url, tmp_path))
            pytest.xfail(f"{xfail[0].id}: {xfail[0].reason}")
        run_chain(chain, Target(url, tmp_path))
    assert "Traceback" not in capsys.readouterr().err
