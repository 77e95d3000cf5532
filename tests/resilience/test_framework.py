"""policy= on the service's and the clients' requests (memory://): remote errors are not
retried unless the policy says so, timeouts and rejections are typed, svc.calls sets a
default per callee topic, and policies are found by name."""

from __future__ import annotations

import asyncio
import secrets

import pytest

import tidings
from tidings.resilience import Backoff, Bulkhead, Counters, Pipeline, Retry, policies


def service(url: str) -> tuple[tidings.Service, dict]:
    svc = tidings.Service("pricing", url=url, grace_period=0.2)
    seen = {"calls": 0}

    @svc.reply("pricing.quote", concurrency=8)
    async def quote(query: dict) -> dict:
        seen["calls"] += 1
        if query.get("fail_first") and seen["calls"] == 1:
            raise ValueError("first call fails")
        if query.get("hang"):
            await asyncio.sleep(30)
        return {"price": 9.5, "call": seen["calls"]}

    return svc, seen


def fast_retry(**kwargs) -> Retry:
    return Retry(backoff=Backoff(initial=0.01, jitter=0), **kwargs)


@pytest.fixture
def url() -> str:
    return f"memory://resilience-{secrets.token_hex(4)}"


async def test_a_remote_error_is_retried_only_when_the_policy_says_so(url):
    svc, seen = service(url)
    async with svc.running():
        plain = Pipeline("plain", retry=fast_retry())
        with pytest.raises(tidings.RemoteError, match="first call fails"):
            await svc.request("pricing.quote", {"fail_first": True}, policy=plain)
        assert seen["calls"] == 1
        seen["calls"] = 0
        eager = Pipeline("eager", retry=fast_retry(retry_on=(tidings.RemoteError,)))
        reply = await svc.request("pricing.quote", {"fail_first": True}, policy=eager)
        assert reply == {"price": 9.5, "call": 2}


async def test_calls_sets_the_default_policy_of_a_callee_topic(url):
    svc, _ = service(url)
    counters = Counters()
    svc.calls("pricing.quote", policy=Pipeline("quote", timeout=0.2, observer=counters))
    async with svc.running():
        assert (await svc.request("pricing.quote", {}))["price"] == 9.5
        with pytest.raises(tidings.Timeout) as info:
            await svc.request("pricing.quote", {"hang": True})
        assert "attempt 1 to 'pricing.quote' took longer than 0.2s" in str(info.value)
        assert isinstance(info.value, TimeoutError)
        assert counters.by_callee[("timeout", "pricing.quote")] == 1
        # an explicit policy wins over the default (here: an empty one, no timeout)
        assert (await svc.request("pricing.quote", {}, policy=Pipeline()))["price"] == 9.5


async def test_a_rejection_is_typed_and_nothing_is_sent(url):
    svc, seen = service(url)
    policy = Pipeline("tight", bulkhead=Bulkhead(max_concurrent=1))
    async with svc.running():
        hung = asyncio.create_task(svc.request("pricing.quote", {"hang": True}, policy=policy))
        while policy.bulkhead.compartment().active == 0:
            await asyncio.sleep(0.01)
        before = seen["calls"]
        with pytest.raises(tidings.BulkheadFull):
            await svc.request("pricing.quote", {}, policy=policy)
        assert seen["calls"] == before
        hung.cancel()
        await asyncio.gather(hung, return_exceptions=True)


async def test_policies_by_name_on_the_clients_and_scatter(url):
    svc, _ = service(url)
    policies.configure({"test-quotes": {"timeout": 5.0, "retry": {"max_attempts": 2}}})
    async with svc.running():
        async with tidings.connect(url) as client:
            reply = await client.request("pricing.quote", b"{}", policy="test-quotes")
            assert b"9.5" in reply.body
            replies = await client.scatter(
                "pricing.quote", b"{}", timeout=0.5, max_replies=1, policy="test-quotes"
            )
            assert len(replies) == 1
        got = await svc.scatter(
            "pricing.quote", {}, timeout=0.5, max_replies=1, policy="test-quotes"
        )
        assert got[0]["price"] == 9.5
        with pytest.raises(tidings.errors.NotFound, match="no resilience policy named"):
            await svc.request("pricing.quote", {}, policy="no-such-policy")
