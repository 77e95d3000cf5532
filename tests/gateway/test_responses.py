"""The shared store of idempotent responses: two gateways' stores on one broker (memory://),
racing for a key, replaying each other's responses, and one started later reading the past."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator

import pytest

import tidings
from tidings.gateway.responses import (
    TOPIC,
    Claim,
    InProgress,
    KeyReused,
    SharedResponses,
    Stored,
)


@contextlib.asynccontextmanager
async def store(url: str) -> AsyncIterator[SharedResponses]:
    async with tidings.AsyncClient(url) as client:
        shared = SharedResponses(ttl=3600)
        await shared.start(client)
        try:
            yield shared
        finally:
            await shared.close()


async def seen(shared: SharedResponses, key: str, state: str) -> None:
    async with asyncio.timeout(10):
        while (e := shared.view.entries.get(key)) is None or e.state != state:
            await asyncio.sleep(0.01)


@pytest.fixture
def url() -> str:
    return f"memory://responses-{uuid.uuid4().hex[:8]}"


async def test_racing_claims_of_one_key_let_exactly_one_in(url):
    async with store(url) as a, store(url) as b:
        got = await asyncio.gather(
            *(s.claim("ip:1/k", "fp", 10) for s in (a, b, a, b)), return_exceptions=True
        )
        assert sum(isinstance(g, Claim) for g in got) == 1, got
        assert all(isinstance(g, Claim | InProgress) for g in got), got


async def test_a_response_stored_by_one_is_replayed_by_the_other(url):
    async with store(url) as a, store(url) as b:
        claim = await a.claim("ip:1/k", "fp", 10)
        assert isinstance(claim, Claim)
        await a.finish(claim, Stored(202, b'{"id":"k"}', {"location": "/x/k"}, "fp"))
        await seen(b, "ip:1/k", "done")
        replay = await b.claim("ip:1/k", "fp", 10)
        assert isinstance(replay, Stored)
        assert (replay.status, replay.body, replay.headers) == (
            202,
            b'{"id":"k"}',
            {"location": "/x/k"},
        )
        with pytest.raises(KeyReused):
            await b.claim("ip:1/k", "another body", 10)
        assert isinstance(await b.claim("ip:2/k", "fp", 10), Claim)  # keys are per client


async def test_a_released_key_is_claimed_again_as_the_next_generation(url):
    async with store(url) as a, store(url) as b:
        first = await a.claim("ip:1/k", "fp", 10)
        assert isinstance(first, Claim)
        await seen(b, "ip:1/k", "claimed")
        with pytest.raises(InProgress):
            await b.claim("ip:1/k", "fp", 10)
        await a.finish(first, None)  # a 5xx: nothing stored
        await seen(b, "ip:1/k", "released")
        second = await b.claim("ip:1/k", "fp", 10)
        assert isinstance(second, Claim) and second.gen == first.gen + 1


async def test_a_claim_its_gateway_never_finished_is_abandoned_after_its_deadline(url):
    async with store(url) as a, tidings.AsyncClient(url) as client:
        dead = {"state": "claimed", "gen": 0, "owner": "x", "fingerprint": "fp", "until": 1.0}
        await client.publish(TOPIC, json.dumps(dead).encode(), key="ip:1/k", msg_id="ip:1/k#0")
        await seen(a, "ip:1/k", "claimed")
        claim = await a.claim("ip:1/k", "fp", 10)
        assert isinstance(claim, Claim) and claim.gen == 1


async def test_a_gateway_started_later_reads_the_stored_responses_first(url):
    async with store(url) as a:
        for n in range(50):
            claim = await a.claim(f"ip:1/k{n}", "fp", 10)
            assert isinstance(claim, Claim)
            await a.finish(claim, Stored(200, str(n).encode(), {}, "fp"))
        async with store(url) as late:
            await asyncio.wait_for(late.caught_up.wait(), 10)
            replay = await late.claim("ip:1/k49", "fp", 10)
            assert isinstance(replay, Stored) and replay.body == b"49"
