"""Resilience policies on a real broker process (tidings://) with real responders: a killed
responder opens the caller's breaker (calls then fail fast) and a restarted one closes it
through half-open; a hedged request returns from the faster of two responders; a bulkhead on
calls to a slow responder keeps the caller's other calls fast."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers.broker_process import BrokerProcess

import tidings
from tidings.resilience import Bulkhead, CircuitBreaker, Counters, Hedge, Pipeline

pytestmark = pytest.mark.timeout(180)

RESPONDER = Path(__file__).with_name("responder.py")
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    with BrokerProcess(tmp_path_factory.mktemp("resilience-broker")) as b:
        yield b


@pytest.fixture
def topic() -> str:
    return f"quotes.{secrets.token_hex(4)}"


class Responder:
    """A responder process, stopped (or killed) by its PID."""

    def __init__(self, url: str, topic: str, name: str, delay: float = 0.0) -> None:
        env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        self.proc = subprocess.Popen(
            [sys.executable, str(RESPONDER), url, topic, name, str(delay)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        assert line.strip() == "ready", f"responder {name} did not start: {line!r}"

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill()


async def until(predicate, deadline: float = 60.0, what: str = "condition"):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        result = await predicate()
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_killed_responder_opens_the_breaker_and_a_restarted_one_closes_it(broker, topic):
    counters = Counters()
    counters.keep = True
    breaker = CircuitBreaker(failure_rate=0.5, minimum_calls=4, window=4, open_for=1.0)
    policy = Pipeline("quotes", breaker=breaker, observer=counters)
    caller = tidings.Service("caller", url=broker.url)
    caller.calls(topic, policy=policy)
    responder = Responder(broker.url, topic, "a")
    try:
        async with caller.running():

            async def answered():
                try:
                    return await caller.request(topic, {"sku": 1}, timeout=2.0)
                except tidings.TidingsError:
                    return None

            assert await until(answered, what="the first reply") == {"by": "a"}
            breaker.circuit(topic).reset()
            for _ in range(4):
                assert await caller.request(topic, {"sku": 1}, timeout=5.0) == {"by": "a"}
            circuit = policy.circuit(topic)
            assert circuit.state == "closed"

            responder.kill()
            failures = 0
            while circuit.state == "closed":
                with pytest.raises(tidings.RequestTimeout):
                    await caller.request(topic, {"sku": 1}, timeout=0.5)
                failures += 1
            assert failures == 2  # 2 of the last 4 calls failed: 50 % opens it
            assert circuit.state == "open"

            attempts = counters["attempt"]
            with pytest.raises(tidings.CircuitOpen):
                await caller.request(topic, {"sku": 1}, timeout=0.5)
            assert counters["attempt"] == attempts  # failed fast: nothing was sent

            responder = Responder(broker.url, topic, "b")

            async def probe_passes():
                try:
                    return await caller.request(topic, {"sku": 1}, timeout=2.0)
                except (tidings.CircuitOpen, tidings.RequestTimeout):
                    return None

            assert await until(probe_passes, what="a successful half-open probe") == {"by": "b"}
            assert circuit.state == "closed"
            states = [e.state for e in counters.events if e.name == "breaker_state"]
            assert states[:2] == ["closed", "open"]  # the reset, then the kill
            assert states[-2:] == ["half_open", "closed"]
    finally:
        responder.stop()


async def test_a_hedged_request_returns_from_the_faster_of_two_responders(broker, topic):
    slow = Responder(broker.url, topic, "slow", delay=30.0)
    fast = Responder(broker.url, topic, "fast", delay=0.0)
    counters = Counters()
    hedged = Pipeline("hedged", hedge=Hedge(delay=0.3), observer=counters)
    try:
        async with tidings.connect(broker.url) as client:
            answers = []
            for _ in range(30):  # the shared group hands requests to both responders
                reply = await client.request(topic, b"{}", timeout=20.0, policy=hedged)
                answers.append(reply.body)
                if counters["hedge_won"] and len(answers) >= 4:
                    break  # "slow" got one (and holds it for 30 s): the hedge answered
            # "slow" answers after 30 s, past the 20 s timeout: every answer came from "fast"
            assert all(body == b'{"by":"fast"}' for body in answers), answers
            assert counters["hedge"] >= 1 and counters["hedge_won"] >= 1
    finally:
        slow.stop()
        fast.stop()


async def test_a_bulkhead_on_a_slow_callee_keeps_the_other_calls_fast(broker, topic):
    slow_topic, fast_topic = f"{topic}.slow", f"{topic}.fast"
    slow = Responder(broker.url, slow_topic, "slow", delay=30.0)
    fast = Responder(broker.url, fast_topic, "fast", delay=0.0)
    policy = Pipeline("calls", bulkhead=Bulkhead(max_concurrent=2, per_callee=True))
    caller = tidings.Service("caller", url=broker.url)
    caller.calls(slow_topic, policy=policy)
    caller.calls(fast_topic, policy=policy)
    try:
        async with caller.running():
            hung = [
                asyncio.create_task(caller.request(slow_topic, {"n": i}, timeout=60.0))
                for i in range(2)
            ]
            await until(
                lambda: _true(policy.bulkhead.compartment(slow_topic).active == 2),
                what="two calls in flight to the slow callee",
            )
            rejected = 0
            for i in range(20):  # more calls to the hung callee are rejected, not queued
                with pytest.raises(tidings.BulkheadFull):
                    await caller.request(slow_topic, {"n": i}, timeout=60.0)
                rejected += 1
                # the other callee is answered while the two hung calls still wait (30 s)
                assert await caller.request(fast_topic, {"n": i}, timeout=20.0) == {"by": "fast"}
            assert rejected == 20
            assert policy.bulkhead.compartment(slow_topic).active == 2  # never more than 2
            assert not any(t.done() for t in hung)
            for t in hung:
                t.cancel()
            await asyncio.gather(*hung, return_exceptions=True)
            assert policy.bulkhead.compartment(slow_topic).active == 0
    finally:
        slow.stop()
        fast.stop()


async def _true(value: bool) -> bool:
    return value


def test_the_sync_client_takes_policy_too(broker, topic):
    responder = Responder(broker.url, topic, "sync")
    counters = Counters()
    try:
        with tidings.connect_sync(broker.url) as client:
            policy = Pipeline("sync", timeout=20.0, observer=counters)
            reply = client.request(topic, b"{}", timeout=20.0, policy=policy)
            assert reply.body == b'{"by":"sync"}'
            assert counters.by_callee[("attempt", topic)] == 1
    finally:
        responder.stop()
