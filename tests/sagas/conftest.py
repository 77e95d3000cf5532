"""Fixtures of the saga tests: a real broker process (module) and a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.helpers.broker_process import BrokerProcess
from tests.helpers.postgres import *  # noqa: F403 - the postgres_server and pg_url fixtures


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    with BrokerProcess(tmp_path_factory.mktemp("saga-broker")) as b:
        yield b
