"""Where discovery requests travel: core NATS subjects on ``nats://``, the reserved
:data:`~.subjects.SRV_TOPIC` topic elsewhere (see :mod:`.subjects`).

A bus answers the control subjects of one instance (``answer``) and asks a control subject,
gathering every answer until a deadline (``ask``). Both sides use the same bus, so a tidings
caller finds ``nats.micro`` services on ``nats://`` and NATS tooling finds tidings services.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ...errors import Forbidden, TidingsError, TopicConflict
from .subjects import (
    SRV_RETENTION,
    SRV_TOPIC,
    SUBJECT_HEADER,
    addressed_to,
    instance_subjects,
)

if TYPE_CHECKING:
    from ..asyncclient import AsyncClient
    from ..subscription import Subscription

log = logging.getLogger("tidings.discovery")

Respond = Callable[[str], Awaitable[bytes | None]]  # verb -> the answer (None: stay silent)


async def ensure_topic(client: AsyncClient, topic: str, **options: Any) -> None:
    """Create ``topic`` if needed; a user who may not create topics, or who finds it created
    with other settings, uses it as it is (an operator created it)."""
    try:
        await client.create_topic(topic, exist_ok=True, **options)
    except (Forbidden, TopicConflict):
        pass


def _decode(body: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


class DiscoveryBus:
    """The interface; see :class:`TopicBus` and :class:`NatsBus`."""

    async def answer(self, name: str, instance: str, respond: Respond) -> None:
        raise NotImplementedError

    async def ask(
        self, subject: str, timeout: float = 1.0, max_replies: int | None = None
    ) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class TopicBus(DiscoveryBus):
    """Discovery over the reserved topic (``memory://``, ``tidings://``)."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._group: str | None = None

    async def _topic(self) -> None:
        await ensure_topic(self.client, SRV_TOPIC, max_age=SRV_RETENTION)

    async def answer(self, name: str, instance: str, respond: Respond) -> None:
        await self._topic()
        self._group = f"_srv.{instance}"
        self._sub = await self.client.subscribe(
            SRV_TOPIC, self._group, start="latest", auto_ack=True, prefetch=64
        )
        self._task = asyncio.create_task(self._serve(name, instance, respond))

    async def _serve(self, name: str, instance: str, respond: Respond) -> None:
        assert self._sub is not None
        while True:
            try:
                message = await self._sub.next()
            except TidingsError:
                return
            if message is None:
                continue
            verb = addressed_to(message.headers.get(SUBJECT_HEADER, ""), name, instance)
            if verb is None:
                continue
            try:
                body = await respond(verb)
                if body is not None:
                    await self.client.reply(message, body)
            except TidingsError as exc:
                log.debug("could not answer a discovery request: %s", exc)

    async def ask(
        self, subject: str, timeout: float = 1.0, max_replies: int | None = None
    ) -> list[dict[str, Any]]:
        await self._topic()
        replies = await self.client.scatter(
            SRV_TOPIC,
            b"",
            timeout=timeout,
            max_replies=max_replies,
            headers={SUBJECT_HEADER: subject},
        )
        return [doc for doc in (_decode(m.body) for m in replies) if doc is not None]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._sub is not None:
            sub, self._sub = self._sub, None
            with contextlib.suppress(TidingsError):
                await sub.close()
            with contextlib.suppress(TidingsError):  # the group belonged to this instance
                await self.client.delete_group(SRV_TOPIC, self._group or "")


class NatsBus(DiscoveryBus):
    """Discovery over core NATS subjects, exactly as ``nats.micro`` does it."""

    def __init__(self, nc: Any) -> None:
        self.nc = nc
        self._subs: list[Any] = []

    async def answer(self, name: str, instance: str, respond: Respond) -> None:
        async def on_request(msg: Any) -> None:
            verb = msg.subject.split(".")[1]
            try:
                body = await respond(verb)
                if body is not None and msg.reply:
                    await self.nc.publish(msg.reply, body)
            except Exception as exc:  # one bad request must not stop the subscription
                log.debug("could not answer %s: %s", msg.subject, exc)

        for subject in instance_subjects(name, instance):
            self._subs.append(await self.nc.subscribe(subject, cb=on_request))

    async def ask(
        self, subject: str, timeout: float = 1.0, max_replies: int | None = None
    ) -> list[dict[str, Any]]:
        inbox = self.nc.new_inbox()
        got: list[dict[str, Any]] = []
        done = asyncio.Event()

        async def on_reply(msg: Any) -> None:
            doc = _decode(msg.data)
            if doc is not None:
                got.append(doc)
            if max_replies is not None and len(got) >= max_replies:
                done.set()

        sub = await self.nc.subscribe(inbox, cb=on_reply)
        try:
            await self.nc.publish(subject, b"", reply=inbox)
            await self.nc.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        return got

    async def close(self) -> None:
        subs, self._subs = self._subs, []
        for sub in subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


def bus_for(client: AsyncClient) -> DiscoveryBus:
    """The bus of ``client``'s transport."""
    transport = client.transport
    if transport.scheme == "nats":
        # scheme "nats" is a NatsTransport: not imported here, that would load nats-py
        return NatsBus(transport.nc)  # type: ignore[attr-defined]  # see the line above
    return TopicBus(client)
