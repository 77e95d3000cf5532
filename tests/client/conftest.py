from __future__ import annotations

import secrets

import pytest

import tidings


@pytest.fixture
def memory_url() -> str:
    """A private in-process broker for one test."""
    return f"memory://client-{secrets.token_hex(4)}"


@pytest.fixture
async def client(memory_url):
    async with tidings.connect(memory_url) as c:
        yield c
