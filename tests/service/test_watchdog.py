"""The watchdog: one timer per consumer that extends the leases of slow handlings and cancels
handlings past their hard timeout, as ``asyncio.timeout`` would."""

from __future__ import annotations

import asyncio

import pytest

from tidings.service.watchdog import Watchdog


class FakeMessage:
    """What the watchdog and the lease keeper use of a message: ``settled`` and ``extend``."""

    def __init__(self, name: str) -> None:
        self.id = name
        self.topic = "t"
        self.settled = False
        self.extended: list[float] = []

    async def extend(self, seconds: float) -> None:
        self.extended.append(seconds)


async def handle(dog: Watchdog, message: FakeMessage, seconds: float) -> str:
    """A handling under watch, as ``execute`` runs it: 'ok', 'timeout' or 'cancelled'."""
    watch = dog.start(message)  # type: ignore[arg-type]
    try:
        await asyncio.sleep(seconds)
    except BaseException as exc:
        timed_out = dog.end(watch, exc)
        if watch.keeper is not None:
            await watch.keeper.stop()
        if timed_out:
            return "timeout"
        raise
    dog.end(watch, None)
    if watch.keeper is not None:
        await watch.keeper.stop()
    return "ok"


async def test_only_handlings_past_the_half_lease_are_extended():
    dog = Watchdog(lease=0.2, timeout=None)
    slow, quick = FakeMessage("slow"), FakeMessage("quick")
    results = await asyncio.gather(handle(dog, slow, 0.35), handle(dog, quick, 0.02))
    assert results == ["ok", "ok"]
    assert slow.extended[:2] == [0.2, 0.2]  # at 0.1 s and 0.2 s (and maybe 0.3 s)
    assert quick.extended == []
    dog.close()


async def test_each_handling_times_out_at_its_own_deadline():
    """A later handling is not cancelled with an earlier one; each gets its full timeout."""
    dog = Watchdog(lease=30.0, timeout=0.1)
    loop = asyncio.get_running_loop()
    ended: dict[str, float] = {}

    async def timed(name: str, delay: float) -> str:
        await asyncio.sleep(delay)
        started = loop.time()
        result = await handle(dog, FakeMessage(name), 10.0)
        ended[name] = loop.time() - started
        return result

    results = await asyncio.gather(timed("first", 0.0), timed("second", 0.05))
    assert results == ["timeout", "timeout"]
    assert 0.1 <= ended["first"] < 0.2 and 0.1 <= ended["second"] < 0.2
    dog.close()


async def test_handlings_that_finish_in_time_are_not_cancelled():
    dog = Watchdog(lease=30.0, timeout=0.1)
    assert await handle(dog, FakeMessage("a"), 0.01) == "ok"
    await asyncio.sleep(0.15)  # past the first handling's deadline: nothing is left to cancel
    assert await handle(dog, FakeMessage("b"), 0.01) == "ok"
    dog.close()


async def test_a_cancellation_from_elsewhere_stays_a_cancellation():
    dog = Watchdog(lease=30.0, timeout=5.0)
    task = asyncio.create_task(handle(dog, FakeMessage("a"), 10.0))
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.wait([task])
    assert task.cancelled()
    dog.close()


class SwallowingMessage(FakeMessage):
    """A transport whose extend swallows a cancellation and returns normally (Python 3.11's
    asyncio.timeout does when its own deadline lands together with the cancel)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.in_extend = asyncio.Event()

    async def extend(self, seconds: float) -> None:
        self.extended.append(seconds)
        self.in_extend.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            return


@pytest.mark.timeout(30)  # before: stop() never returned (a cancel cannot end it either)
async def test_stopping_a_keeper_ends_it_when_the_transport_swallows_the_cancel():
    from tidings.service.leases import LeaseKeeper

    message = SwallowingMessage("m")
    keeper = LeaseKeeper(message, lease=0.2)  # type: ignore[arg-type]
    keeper.start_extending()
    await message.in_extend.wait()
    # before: the keeper extended on (the message is not settled until the handling's
    # stop() returns) and stop() waited for it forever
    await keeper.stop()
    assert message.settled is False and len(message.extended) == 1
