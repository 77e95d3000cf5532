"""Sagas on a real broker process, on SQLite and on PostgreSQL (each side its own database):
the happy path, a failure at each step compensates exactly the completed steps in reverse
order, a participant that never answers times out and is compensated, retries, the pivot, and
the bad input an orchestrator must survive (unknown saga, malformed and duplicate replies)."""

from __future__ import annotations

import asyncio
import secrets

import pytest
import sqlalchemy as sa

import tidings
from tidings import AsyncClient
from tidings.sagas import protocol as p

from .shop import STEPS, OrderState, running_shop

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def prefix() -> str:
    return f"t{secrets.token_hex(3)}"


@pytest.fixture(params=["sqlite", "postgresql"])
def dbs(request, tmp_path) -> tuple[str, str]:
    """Each side its own database: two SQLite files, or two databases on one PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'orders.db'}", f"sqlite:///{tmp_path / 'shop.db'}"
    pg = request.getfixturevalue("postgres_server")
    return pg.create_database(), pg.create_database()


def events(shop, saga_id: str) -> list[tuple[str | None, str]]:
    engine = shop.orchestrator._engine()
    with engine.connect() as conn:
        _, rows = shop.orchestrator.store.show(conn, saga_id)
    return [(r["step"], r["event"]) for r in rows]


async def test_happy_path_runs_every_step_once_and_folds_the_replies(prefix, dbs, broker):
    async with running_shop(prefix, *dbs, broker.url) as shop:
        saga_id = await shop.orchestrator.start(shop.saga, OrderState(order="o-1"))
        record = await shop.orchestrator.wait(saga_id, timeout=30)
        assert record.status == "completed"
        assert OrderState.model_validate_json(record.state).charge_id == "ch-o-1"
        assert [s["status"] for s in record.steps] == ["done"] * 3
        assert shop.effects(saga_id) == [(s, "do") for s in STEPS]
        assert [e for _, e in events(shop, saga_id)] == [
            "started",
            "command-sent",
            "step-done",
            "command-sent",
            "step-done",
            "command-sent",
            "step-done",
            "completed",
        ]


@pytest.mark.parametrize("failing", range(len(STEPS)))
async def test_failure_at_each_step_compensates_the_completed_ones_in_reverse(
    failing, prefix, dbs, broker
):
    async with running_shop(prefix, *dbs, broker.url) as shop:
        saga_id = await shop.orchestrator.start(
            shop.saga, OrderState(order="o-2", fail=STEPS[failing])
        )
        record = await shop.orchestrator.wait(saga_id, timeout=30)
        done = list(STEPS[:failing])
        assert record.status == "compensated"
        assert record.failed_step == STEPS[failing]
        assert "refused for o-2" in (record.error or "")
        # the failed step's work rolled back at the participant (StepFailed: a savepoint)
        effects = shop.effects(saga_id)
        assert sorted(e for e in effects if e[1] == "do") == sorted((s, "do") for s in done)
        assert [e for e in effects if e[1] == "undo"] == [(s, "undo") for s in reversed(done)]
        compensated = [s for s, e in events(shop, saga_id) if e == "compensated" and s]
        assert compensated == list(reversed(done))
        expected = ["compensated"] * failing + ["failed"] + ["pending"] * (2 - failing)
        assert [s["status"] for s in record.steps] == expected


async def test_a_participant_that_never_answers_times_out_and_is_compensated(prefix, dbs, broker):
    async with running_shop(prefix, *dbs, broker.url, timeout=1.5) as shop:
        saga_id = await shop.orchestrator.start(shop.saga, OrderState(order="o-3", hang="book"))
        record = await shop.orchestrator.wait(saga_id, timeout=40)
        assert record.status == "compensated"
        assert record.failed_step == "book"
        assert "no reply from" in (record.error or "")
        # the timed-out step is compensated too (it might have taken effect); its command had
        # not, so the participant only marked it cancelled: no undo effect for it
        sent = [s for s, e in events(shop, saga_id) if e == "compensation-sent"]
        order = ["book", "reserve", "charge"]
        assert list(dict.fromkeys(sent)) == order
        # a compensation not answered within the step's timeout is sent again (it happens on
        # a loaded machine); the next one goes out only once the current one was answered
        assert sent == sorted(sent, key=order.index)
        effects = shop.effects(saga_id)
        assert [e for e in effects if e[1] == "undo"] == [("reserve", "undo"), ("charge", "undo")]
        assert sorted(e for e in effects if e[1] == "do") == [("charge", "do"), ("reserve", "do")]
        # the late command keeps coming back (its handler raises): it finds the mark, does nothing
        await asyncio.sleep(1.0)
        assert ("book", "do") not in shop.effects(saga_id)


async def test_retry_policy_tries_a_failed_step_again_before_compensating(prefix, dbs, broker):
    async with running_shop(prefix, *dbs, broker.url) as shop:
        ok = await shop.orchestrator.start(shop.saga, OrderState(order="o-4", flaky={"reserve": 2}))
        gives_up = await shop.orchestrator.start(
            shop.saga, OrderState(order="o-5", flaky={"reserve": 3})
        )
        record = await shop.orchestrator.wait(ok, timeout=30)
        assert record.status == "completed"
        assert record.steps[1]["attempts"] == 3
        record = await shop.orchestrator.wait(gives_up, timeout=30)
        assert record.status == "compensated"  # max_attempts=3 used up
        assert shop.effects(gives_up) == [("charge", "do"), ("charge", "undo")]


async def test_after_the_pivot_a_step_is_retried_until_it_succeeds(prefix, dbs, broker):
    async with running_shop(prefix, *dbs, broker.url, pivot="reserve") as shop:
        saga_id = await shop.orchestrator.start(
            shop.saga, OrderState(order="o-6", flaky={"book": 5})
        )
        record = await shop.orchestrator.wait(saga_id, timeout=40)
        assert record.status == "completed"
        assert record.steps[2]["attempts"] == 6  # past the retry's max_attempts: never gives up
        assert shop.effects(saga_id) == [(s, "do") for s in STEPS]


def test_pivot_rules_are_checked_when_the_saga_is_declared():
    saga = tidings.Saga("rules")

    @saga.step(command="a.do", pivot=True)
    def a(state): ...

    with pytest.raises(tidings.errors.BadRequest, match="never compensated"):
        saga.step(command="b.do", compensate="b.undo")(lambda state: None)
    with pytest.raises(tidings.errors.BadRequest, match="only one step"):
        saga.step(command="c.do", pivot=True)(lambda state: None)


async def test_bad_replies_are_handled_the_same_way_every_time(prefix, dbs, broker, caplog):
    caplog.set_level("INFO", logger="tidings.sagas")
    async with running_shop(prefix, *dbs, broker.url) as shop:
        saga_id = await shop.orchestrator.start(shop.saga, OrderState(order="o-7"))
        record = await shop.orchestrator.wait(saga_id, timeout=30)
        topic = p.reply_topic(shop.saga.name)
        first_token = f"{saga_id}.0.f.1"
        async with AsyncClient(broker.url) as client:
            # a duplicate of the first step's reply: acknowledged and ignored
            await client.publish(
                topic,
                p.encode_reply(True, {"charge_id": "other"}),
                key=saga_id,
                headers={p.SAGA_ID: saga_id, "correlation-id": first_token},
            )
            # a reply for a saga nobody started, and two malformed ones: dead-lettered
            await client.publish(
                topic,
                p.encode_reply(True),
                key="nope",
                headers={p.SAGA_ID: "nope", "correlation-id": "nope.0.f.1"},
            )
            await client.publish(
                topic,
                b"not json",
                key=saga_id,
                headers={p.SAGA_ID: saga_id, "correlation-id": first_token},
            )
            await client.publish(topic, p.encode_reply(True), key=saga_id)
            dlq_topic = f"{topic}.{shop.saga.name}.orchestrator.dlq"
            await client.create_topic(dlq_topic, exist_ok=True)
            dlq = await client.subscribe(dlq_topic, "check")
            dead = []
            while len(dead) < 3:
                dead += await dlq.next_batch(10, timeout=20)
            for m in dead:
                await m.ack()
        assert {m.headers["tidings-dlq-reason"] for m in dead} == {"rejected"}
        reasons = sorted(m.headers["tidings-dlq-error"] for m in dead)
        assert [r.split(":")[0] for r in reasons] == [
            "malformed saga reply",
            "malformed saga reply",
            "no saga nope of " + shop.saga.name,
        ]
        after = await shop.orchestrator.get(saga_id)
        assert after is not None and after.version == record.version  # untouched
        assert OrderState.model_validate_json(after.state).charge_id == "ch-o-7"
        text = caplog.text
        assert f"saga {shop.saga.name} {saga_id}: reply ok for {first_token} ignored" in text
        assert "nope: reply" in text and "unknown saga" in text


async def test_start_in_the_callers_transaction_and_ids(prefix, dbs, broker):
    async with running_shop(prefix, *dbs, broker.url) as shop:
        with pytest.raises(RuntimeError):
            async with shop.svc.transaction() as tx:
                await shop.orchestrator.start(shop.saga, OrderState(order="x"), id="rolled", tx=tx)
                raise RuntimeError("the caller's transaction rolls back: no saga, no command")
        assert await shop.orchestrator.get("rolled") is None
        async with shop.svc.transaction() as tx:
            tx.execute(sa.text("CREATE TABLE IF NOT EXISTS notes (n TEXT)"))
            await shop.orchestrator.start(shop.saga, OrderState(order="o-8"), id="o-8", tx=tx)
        with pytest.raises(tidings.errors.AlreadyExists):
            await shop.orchestrator.start(shop.saga, OrderState(order="o-8"), id="o-8")
        assert (await shop.orchestrator.wait("o-8", timeout=30)).status == "completed"


async def test_a_reply_that_does_not_fit_fails_the_step_at_once(prefix, dbs, broker):
    # the step's timeout is 30 s: the saga must not wait for it (it used to: the reply was
    # dead-lettered and the step timed out, three times over with the retry policy)
    async with running_shop(prefix, *dbs, broker.url) as shop:
        saga_id = await shop.orchestrator.start(shop.saga, OrderState(order="o-9", bad="charge"))
        record = await shop.orchestrator.wait(saga_id, timeout=20)
        assert record.status == "compensated"
        assert record.failed_step == "charge"
        assert (record.error or "").startswith("charge: malformed reply: it does not fit")
        assert record.steps[0]["status"] == "compensated" and record.steps[0]["attempts"] == 3
        history = [(s, e) for s, e in events(shop, saga_id)]
        assert history.count(("charge", "step-malformed-reply")) == 3  # retry policy, then...
        # ...the step is compensated: its participant did the work (and answered badly)
        assert ("charge", "compensated") in history
        assert shop.effects(saga_id) == [("charge", "do"), ("charge", "undo")]


async def test_garbage_and_replies_for_unknown_steps_fail_the_awaited_step(prefix, dbs, broker):
    async with running_shop(prefix, *dbs, broker.url) as shop:  # step timeout 30 s
        saga_id = await shop.orchestrator.start(shop.saga, OrderState(order="o-10", hang="book"))
        topic = p.reply_topic(shop.saga.name)
        bad = [
            (b"not json", None, None),
            (p.encode_reply(True), f"{saga_id}.9.f.1", None),  # no step 9
            (p.encode_reply(True), None, "nope"),  # the awaited command, for step "nope"?
        ]
        async with AsyncClient(broker.url) as client:
            loop = asyncio.get_running_loop()
            for body, token, step in bad:
                deadline = loop.time() + 20
                while True:  # until book's next attempt is awaited
                    record = await shop.orchestrator.get(saga_id)
                    assert record is not None and loop.time() < deadline, record
                    if record.step == 2 and record.token not in (None, token):
                        break
                    await asyncio.sleep(0.05)
                headers = {p.SAGA_ID: saga_id, "correlation-id": token or record.token}
                if step:
                    headers[p.STEP] = step
                await client.publish(topic, body, key=saga_id, headers=headers)
                while (await shop.orchestrator.get(saga_id)).token == record.token:  # type: ignore[union-attr]
                    assert loop.time() < deadline
                    await asyncio.sleep(0.05)
        record = await shop.orchestrator.wait(saga_id, timeout=20)
        assert record.status == "compensated" and record.failed_step == "book"
        details = [d for _, e, d in _history(shop, saga_id) if e == "step-malformed-reply"]
        assert len(details) == 3
        assert details[0].startswith("malformed reply: the body is not JSON")
        assert "unknown step: its correlation id" in details[1] and ".9.f.1" in details[1]
        assert "it says it is for step 'nope'" in details[2]
        # book (which may have taken effect) is compensated with the completed steps
        sent = [s for s, e in events(shop, saga_id) if e == "compensation-sent"]
        assert list(dict.fromkeys(sent)) == ["book", "reserve", "charge"]


def _history(shop, saga_id: str) -> list[tuple[str | None, str, str | None]]:
    with shop.orchestrator._engine().connect() as conn:
        _, rows = shop.orchestrator.store.show(conn, saga_id)
    return [(r["step"], r["event"], r["detail"]) for r in rows]
