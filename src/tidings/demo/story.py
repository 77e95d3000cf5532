"""The order-refund story, played on a real broker in about half a minute.

1. An order service publishes ``order.refunded`` for a burst of orders, plus a few malformed
   events, and re-sends some events with the same message id at once (the broker drops them).
   The last part of the burst comes in over HTTP: POSTed to ``/refunds`` on a gateway in front
   of the order service (``tidings[gateway]``; without it the demo says so and publishes all).
2. Inventory, payment (two workers) and notification each consume in their own group: every
   service gets every event without the order service knowing them, and each drains the burst
   at its own pace (peak shaving).
3. Midway the second payment worker hangs (SIGSTOP): its leased refunds come back after the
   visibility timeout and go to its sibling; then it is killed (SIGKILL).
4. Malformed events fail validation and go to each group's dead-letter topic at once.
5. After the dedup window the order service re-sends some events again: the broker takes them,
   the idempotent consumers skip them by message id.
6. The order service asks payment for a refund's status (request/reply).
7. A refund saga (:mod:`.saga`): refund the payment, restock, notify; one refund completes,
   the other's restock fails and its payment refund is compensated.
8. The summary proves every refund was handled by every service exactly once in effect, and
   the sagas ended as they should, each effect once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import headers as h
from ..client import AsyncClient
from ..errors import BadRequest, NotFound, TidingsError, Timeout
from ..model import Receipt
from ..service import Service
from ..service.execution import Handled
from . import http as gw
from .broker import DemoBroker, child_env
from .display import Display, GroupView
from .models import REFUND, REFUNDED, STATUS, OrderRefunded, RefundStatus, RefundStatusQuery
from .services import Pace, consumer, database, effects

SERVICES = ("inventory", "payment", "notification")
# Different speeds: inventory is quick, payment is two workers, notification is the slowest.
PACES = {
    "inventory": Pace(concurrency=16, cost=0.0),
    "payment": Pace(concurrency=8, cost=0.004),  # per worker
    "notification": Pace(concurrency=4, cost=0.008),
}


def simulated_costs_line() -> str:
    """Says that the consumers' work is simulated, and how much of it each does."""
    parts = []
    for name, pace in PACES.items():
        cost = f"{pace.cost * 1000:g} ms per event" if pace.cost else "no cost"
        per = " per worker" if name == "payment" else ""
        parts.append(f"{name} {cost} ({pace.concurrency} at once{per})")
    return "consumer costs are simulated (a sleep in each handler): " + ", ".join(parts)


def dead_letter_line(dlq: str, reason: str, error: str, limit: int = 160) -> str:
    """One line about a dead letter: its reason and error, cut at a word, no trailing '; '."""
    line = f"dead letter in {dlq}: {reason} {error}".strip().rstrip(";").strip()
    if len(line) > limit:
        line = line[: limit - 3].rsplit(" ", 1)[0].rstrip(";,") + "..."
    return line


@dataclass
class DemoOptions:
    orders: int = 10_000
    url: str | None = None  # None: start a broker for the demo
    malformed: int = 3
    resend: int = 100  # re-sent at once (broker dedup) and again after the dedup window
    lease: float = 2.0  # visibility timeout of every consumer
    dedup_window: float = 3.0  # short, so the demo can outwait it
    kill_at: float = 0.3  # freeze payment-2 when payment has settled this share of the burst
    deadline: float = 180.0  # give up (and fail) after this long
    http: int = 300  # the burst's last refunds POSTed through the gateway (0: none)
    quiet: bool = False
    interactive: bool | None = None


@dataclass
class Tally:
    """What one service's in-process instances saw (settled handlings by outcome)."""

    outcomes: Counter[str] = field(default_factory=Counter)
    redelivered: int = 0  # handled with delivery count > 1

    def record(self, handled: Handled) -> None:
        if handled.ctx.handler.responder:
            return
        self.outcomes[handled.outcome] += 1
        if handled.ctx.delivery_count > 1 and handled.outcome in ("ok", "duplicate"):
            self.redelivered += 1


class Story:
    def __init__(self, opts: DemoOptions, display: Display) -> None:
        self.opts = opts
        self.show = display
        self.tmp = Path(tempfile.mkdtemp(prefix="tidings-demo-"))
        self.broker: DemoBroker | None = None
        self.prefix = "" if opts.url is None else f"demo-{secrets.token_hex(3)}."
        self.topic = self.prefix + REFUNDED
        self.status_topic = self.prefix + STATUS
        self.tallies = {name: Tally() for name in SERVICES}
        self.services: list[Service] = []
        self.worker2: subprocess.Popen[str] | None = None
        self.monitor: AsyncClient | None = None
        self.facts: dict[str, Any] = {}
        self.orders = [_order(i) for i in range(opts.orders)]
        self.gateway: gw.RefundGateway | None = None
        self.via_http = 0  # refund commands the order service took from the gateway
        # messages the topic took (receipts that are not duplicates): the demo's own count,
        # the total of every group's progress (engines differ in what topic_info counts:
        # RabbitMQ keeps no topic, only each group's queue)
        self.published = 0

    # setting the stage
    async def start(self) -> None:
        url = self.opts.url
        if url is None:
            self.broker = DemoBroker(self.tmp / "data")
            url = await asyncio.to_thread(self.broker.start)
            self.show.say(f"started a broker at {url} (data in {self.tmp / 'data'})")
        elif url.startswith("memory://"):
            raise BadRequest(
                "the demo kills a worker process, so it needs a broker other processes reach: "
                "leave out --url (a broker is started for you) or use tidings://, nats://, "
                "redis:// or amqp://"
            )
        self.url = url
        self.monitor = AsyncClient(url)
        await self.monitor.connect()
        self.order = Service("order", url, default_middleware=False)
        self.order.topic(self.topic, dedup_window=self.opts.dedup_window)
        http_n = min(self.opts.http, max(0, len(self.orders) - self.opts.resend))
        lacking = gw.missing()
        if http_n and not lacking:
            self._take_refunds_over_http()
        await self.order.start()
        if http_n and not lacking:
            self.gateway = gw.RefundGateway(url)
            await self.gateway.start()
            self.http_n = http_n
            self.show.say(
                f"started a gateway at {self.gateway.address}: {gw.ROUTE} goes to the order "
                "service over the bus"
            )
        elif http_n:
            self.http_n = 0
            self.show.say(
                f"no gateway ({', '.join(lacking)} not installed: pip install 'tidings[gateway]')"
                ": every refund is published directly"
            )
        else:
            self.http_n = 0
        self.dbs = {name: database(self.tmp, name) for name in SERVICES}
        lease = self.opts.lease
        for name in SERVICES:
            worker = "payment-1" if name == "payment" else name
            svc = consumer(name, url, self.dbs[name], PACES[name], lease=lease, worker=worker,
                           topic=self.topic, status_topic=self.status_topic)  # fmt: skip
            svc.observe(self.tallies[name].record)
            self.services.append(svc)
        await asyncio.gather(*(svc.start() for svc in self.services))
        await asyncio.to_thread(self._start_worker2)
        self.show.groups = {name: GroupView(name) for name in SERVICES}
        self.show.say(
            "inventory, payment (payment-1 here, payment-2 in its own process) and notification "
            f"joined their groups on {self.topic}; lease {lease:g}s"
        )
        self.show.say(simulated_costs_line())

    def _take_refunds_over_http(self) -> None:
        """The order service's HTTP face: a refund command becomes the ``order.refunded``
        event, with the message id of the order (a command handled twice refunds once)."""

        @self.order.on(self.prefix + REFUND, http=gw.ROUTE, concurrency=64, name="order")
        async def refund(cmd: OrderRefunded) -> None:
            await self._publish(cmd)
            self.via_http += 1

    def _start_worker2(self) -> None:
        p = PACES["payment"]
        cmd = [sys.executable, "-m", "tidings.demo.worker", self.url, self.dbs["payment"],
               "payment-2", str(p.concurrency), str(p.cost), str(self.opts.lease), self.topic,
               self.status_topic]  # fmt: skip
        self.worker2 = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            text=True, env=child_env(),
        )  # fmt: skip
        assert self.worker2.stdout is not None
        line = self.worker2.stdout.readline()
        if line.strip() != "ready":
            raise TidingsError("the second payment worker did not start")

    async def stop(self) -> None:
        if self.gateway is not None:
            await self.gateway.stop()
        for svc in self.services:
            with contextlib.suppress(Exception):
                await svc.stop(grace=1.0)
        with contextlib.suppress(Exception):
            await self.order.stop(grace=0)
        if self.worker2 is not None and self.worker2.poll() is None:
            os.kill(self.worker2.pid, signal.SIGKILL)
            self.worker2.wait(5)
        if self.monitor is not None:
            if self.prefix:  # our topics on somebody else's broker: clean up
                for t in await self.monitor.list_topics():
                    if t.name.startswith((self.prefix, f"saga.{self.prefix}")):
                        with contextlib.suppress(TidingsError):
                            await self.monitor.delete_topic(t.name)
            await self.monitor.close()
        if self.broker is not None:
            await asyncio.to_thread(self.broker.stop)
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)

    # the acts
    async def play(self) -> dict[str, Any]:
        started = time.monotonic()
        poller = asyncio.create_task(self._poll())
        try:
            await self._burst()
            await self._kill_payment_worker()
            await self._resend_after_window()
            await self._drained()
            await self._ask_status()
            await self._dead_letter_sample()
            await self._saga()
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        self.facts["elapsed"] = round(time.monotonic() - started, 2)
        return await self._summary()

    async def _burst(self) -> None:
        n, bad = len(self.orders), self.opts.malformed
        self.show.say(f"order service: a burst of {n:,} refunds (+{bad} malformed events)")
        direct = n - self.http_n
        spots = {(k + 1) * direct // (bad + 1): k for k in range(bad)}
        t0 = time.monotonic()
        for start in range(0, direct, 500):
            chunk = self.orders[start : min(start + 500, direct)]
            await asyncio.gather(*(self._publish(o) for o in chunk))
            for spot, k in spots.items():
                if start <= spot < start + len(chunk):
                    self._count(await self.order.publish(
                        self.topic, {"order_id": f"bad-{k + 1}", "amount": "lots"},
                        msg_id=f"malformed-{k + 1}",
                    ))  # fmt: skip
        took = time.monotonic() - t0
        self.show.say(
            f"published {direct:,} refunds on the bus in {took:.1f}s ({direct / took:,.0f}/s)"
        )
        # the last ones published: a burst longer than the dedup window (a loaded machine)
        # has already let the first ones' ids expire
        resent = self.orders[max(0, direct - self.opts.resend) : direct]
        receipts = await asyncio.gather(*(self._publish(o) for o in resent))
        dups = sum(r.duplicate for r in receipts)
        self.facts["broker_duplicates"] = dups
        self.show.say(
            f"order service re-sent {len(resent)} refunds with the same msg_id: the broker "
            f"detected {dups} duplicates and dropped them"
        )
        # after the re-sends: posting takes longer than the dedup window on a loaded machine
        if self.gateway is not None:
            await self._post_refunds(self.orders[direct:])
        self._burst_done = time.monotonic()

    async def _post_refunds(self, orders: list[OrderRefunded]) -> None:
        assert self.gateway is not None
        took = await self.gateway.post(orders)
        await self._until(lambda: self.via_http >= len(orders))
        codes = ", ".join(f"{n:,} x {c}" for c, n in sorted(self.gateway.statuses.items()))
        self.facts["http"] = {
            "route": gw.ROUTE, "gateway": self.gateway.address, "posted": len(orders),
            "accepted": self.gateway.ok(), "statuses": dict(self.gateway.statuses),
            "handled_by_order_service": self.via_http,
        }  # fmt: skip
        self.show.say(
            f"HTTP: {len(orders):,} refunds POSTed to {gw.ROUTE} with an Idempotency-Key in "
            f"{took:.1f}s ({codes}); the order service published them as {self.topic}"
        )

    async def _publish(self, o: OrderRefunded) -> Receipt:
        receipt = await self.order.publish(
            self.topic, o, key=o.order_id, msg_id=f"refund-{o.order_id}"
        )
        return self._count(receipt)

    def _count(self, receipt: Receipt) -> Receipt:
        if not receipt.duplicate:
            self.published += 1
        return receipt

    async def _resend_after_window(self) -> None:
        wait = self._burst_done + self.opts.dedup_window + 1.0 - time.monotonic()
        await asyncio.sleep(max(0.0, wait))
        await self._until(
            lambda: all(g.done >= self.opts.resend for g in self.show.groups.values())
        )
        resent = self.orders[: self.opts.resend]
        receipts = await asyncio.gather(*(self._publish(o) for o in resent))
        taken = sum(not r.duplicate for r in receipts)
        self.facts["resent_after_window"] = taken
        self.show.say(
            f"order service re-sent {len(resent)} refunds after the {self.opts.dedup_window:g}s "
            f"dedup window: the broker took {taken}; idempotent consumers skip them by msg_id"
        )

    async def _kill_payment_worker(self) -> None:
        target = int(self.opts.kill_at * len(self.orders))
        await self._until(lambda: self.show.groups["payment"].done >= target)
        assert self.worker2 is not None
        before = self.tallies["payment"].redelivered
        os.kill(self.worker2.pid, signal.SIGSTOP)
        self.show.say(
            "payment-2 hangs (SIGSTOP) holding leased refunds; they return after the "
            f"{self.opts.lease:g}s visibility timeout"
        )
        await asyncio.sleep(self.opts.lease + 0.5)
        moved = self.tallies["payment"].redelivered - before
        os.kill(self.worker2.pid, signal.SIGKILL)
        await asyncio.to_thread(self.worker2.wait, 10)
        self.show.say(
            f"payment-2 killed (SIGKILL); its expired leases are back in the group for "
            f"payment-1 ({moved} redelivered so far)"
        )
        self.facts["killed_worker"] = {"worker": "payment-2", "signal": "SIGSTOP, then SIGKILL"}

    async def _drained(self) -> None:
        # every message the topic took by now: the burst, the malformed events and the
        # re-sends after the window (the poller may not have seen those yet: without this
        # the summary was taken before the consumers skipped them, "NOT reconciled")
        expected = len(self.orders) + self.opts.malformed + self.facts["resent_after_window"]

        def done() -> bool:
            return all(
                g.done == g.total and g.in_flight == 0 and g.delayed == 0
                and g.total >= expected
                for g in self.show.groups.values()
            )  # fmt: skip

        await self._until(done)
        await self._own_counts_settled()
        self.show.say(
            "every group drained its queue; payment-1 handled "
            f"{self.tallies['payment'].redelivered} redelivered refunds (delivery count > 1)"
        )

    async def _own_counts_settled(self, quiet: float = 5.0) -> None:
        """Wait until what the services themselves recorded is complete: every order's effect
        row, every malformed event dead-lettered, every late re-send skipped; or until nothing
        changed for ``quiet`` seconds (then the summary shows what is missing). An engine's
        counts can lag behind its queues (RabbitMQ's management figures by its statistics
        interval), so the queues looking empty is not enough."""
        n, bad = len(self.orders), self.opts.malformed
        late = self.facts.get("resent_after_window", 0)
        last, since = None, time.monotonic()
        while time.monotonic() - since < quiet:
            counts = []
            for name in SERVICES:
                rows, distinct, _ = await asyncio.to_thread(effects, self.dbs[name])
                counts.append((rows, distinct, self.show.groups[name].dead,
                               self.tallies[name].outcomes["duplicate"]))  # fmt: skip
            if all(c[0] == c[1] == n and c[2] >= bad and c[3] >= late for c in counts):
                return
            if counts != last:
                last, since = counts, time.monotonic()
            await asyncio.sleep(0.2)

    async def _ask_status(self) -> None:
        order = self.orders[min(41, len(self.orders) - 1)]
        answer: RefundStatus = await self.order.request(
            self.status_topic, RefundStatusQuery(order_id=order.order_id),
            returns=RefundStatus, timeout=10,
        )  # fmt: skip
        self.facts["request_reply"] = answer.model_dump()
        self.show.say(
            f"request/reply: payment says refund {answer.order_id} is {answer.state} "
            f"({answer.amount} by {answer.worker})"
        )

    async def _dead_letter_sample(self) -> None:
        assert self.monitor is not None
        dlq = h.dead_letter_topic(self.topic, "payment")
        try:
            sub = await self.monitor.subscribe(dlq, "demo-peek", prefetch=1)
        except NotFound:
            return
        try:
            msg = await sub.next(timeout=2.0)
        finally:
            await sub.close()
        if msg is not None:
            reason = msg.headers.get(h.DLQ_REASON, "?")
            error = msg.headers.get(h.DLQ_ERROR) or ""
            self.facts["dead_letter_example"] = {"topic": dlq, "reason": reason, "error": error}
            self.show.say(dead_letter_line(dlq, reason, error))

    async def _saga(self) -> None:
        from .saga import SagaAct

        act = SagaAct(self.url, self.tmp, self.prefix, f"{self.prefix}refund-order")
        self.show.say(
            "refund saga: refund-payment, restock, notify (orchestrated by the refunds service, "
            "state and outbox in its SQLite database; warehouse answers every step)"
        )
        self.facts["saga"] = await act.play(self.show.say)

    # watching
    async def _poll(self) -> None:
        assert self.monitor is not None
        while True:
            try:
                info = await self.monitor.topic_info(self.topic)
                for g in info.groups:
                    view = self.show.groups.get(g.name)
                    if view is not None:
                        view.update(self.published, g.lag, g.ready, g.in_flight, g.delayed,
                                    g.dead_lettered, g.members)  # fmt: skip
                self.show.tick()
            except TidingsError as exc:
                logging.getLogger("tidings.demo").warning("monitoring failed: %s", exc)
            await asyncio.sleep(0.25)

    async def _until(self, predicate) -> None:
        deadline = self.show.started + self.opts.deadline
        while not predicate():
            if time.monotonic() > deadline:
                raise Timeout(
                    f"the demo did not finish within {self.opts.deadline:g}s: "
                    + "; ".join(f"{g.name} {g.done}/{g.total}" for g in self.show.groups.values())
                )
            await asyncio.sleep(0.05)

    # the proof
    async def _summary(self) -> dict[str, Any]:
        assert self.monitor is not None
        n, bad = len(self.orders), self.opts.malformed
        late = self.facts.get("resent_after_window", 0)
        services: dict[str, Any] = {}
        info = await self.monitor.topic_info(self.topic)
        http = self.facts.get("http")
        for name in SERVICES:
            rows, distinct, per_worker = await asyncio.to_thread(effects, self.dbs[name])
            tally = self.tallies[name]
            dead = info.group(name).dead_lettered
            skipped = tally.outcomes["duplicate"]
            ok = rows == n and distinct == n and dead == bad and skipped >= late
            services[name] = {
                "handled": rows, "distinct_orders": distinct, "by_worker": per_worker,
                "duplicates_skipped": skipped, "redelivered": tally.redelivered,
                "dead_lettered": dead, "reconciled": ok,
            }  # fmt: skip
        return {
            "orders": n,
            "malformed": bad,
            "messages_on_topic": info.messages,
            "published": self.published,
            "broker_duplicates": self.facts.get("broker_duplicates", 0),
            "resent_after_window": late,
            "services": services,
            "killed_worker": self.facts.get("killed_worker"),
            "request_reply": self.facts.get("request_reply"),
            "dead_letter_example": self.facts.get("dead_letter_example"),
            "http": http,
            "saga": self.facts.get("saga"),
            "elapsed_seconds": self.facts.get("elapsed"),
            "reconciled": all(s["reconciled"] for s in services.values())
            and bool(self.facts.get("saga", {}).get("reconciled"))
            and (
                http is None
                or http["accepted"] == http["handled_by_order_service"] == http["posted"]
            ),
        }


def _order(i: int) -> OrderRefunded:
    return OrderRefunded(
        order_id=f"o-{i:06d}", customer=f"c-{i % 997:03d}", sku=f"sku-{i % 50:02d}",
        quantity=1 + i % 3, amount=round(5 + (i % 200) * 0.5, 2),
    )  # fmt: skip
