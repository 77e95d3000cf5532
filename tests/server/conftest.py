"""Fixtures: a real broker process (shared by a module, or fresh per test) and clients."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

from tidings.transports.tidings import NativeTransport

try:  # as the other suites import helpers (pytest run from the repository root)
    from tests.helpers.broker_process import BrokerProcess
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from helpers.broker_process import BrokerProcess

HEARTBEAT = "1.0"  # seconds: a dead connection is noticed within 3 s


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """One broker for every test of a module (tests use their own topic names)."""
    proc = BrokerProcess(tmp_path_factory.mktemp("broker"), args=["--heartbeat", HEARTBEAT])
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def fresh_broker(tmp_path):
    """A broker of this test alone, free to be restarted, killed or stopped."""
    proc = BrokerProcess(tmp_path / "data", args=["--heartbeat", HEARTBEAT])
    proc.start()
    yield proc
    proc.stop()


_names = itertools.count(1)


@pytest.fixture
def name(request) -> str:
    """A topic name no other test uses."""
    return f"{request.node.name[:40].replace('[', '-').replace(']', '')}-{next(_names)}"


@pytest.fixture
async def transport(broker):
    t = NativeTransport(broker.url, timeout=10.0)
    await t.connect()
    yield t
    await t.close()


@pytest.fixture
async def connect(broker):
    """Make more connected transports (closed at the end of the test)."""
    made: list[NativeTransport] = []

    async def factory(url: str | None = None, **options) -> NativeTransport:
        t = NativeTransport(url or broker.url, **{"timeout": 10.0, **options})
        await t.connect()
        made.append(t)
        return t

    yield factory
    for t in made:
        await t.close()
