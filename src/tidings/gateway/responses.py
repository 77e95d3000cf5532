"""Stored responses of requests by ``Idempotency-Key``, shared by every gateway instance: a
client that retries a POST with the same key, through any gateway behind the load balancer,
gets the first answer again instead of a second effect.

They live in the broker, on the internal topic :data:`TOPIC` (one record per change of a key,
the scoped key as the message key, kept ``ttl`` seconds). Each gateway reads the topic from
its start in a group of its own (``_gateway.<id>``) into :class:`KeyView`, and takes a key by
publishing a *claim* whose producer message id is ``key#generation``: the broker's duplicate
detection lets exactly one claim of a generation in, whichever gateway sends it. The winner
runs the request and publishes ``done`` (the response) or ``released`` (a 5xx, not stored: the
key may be used again, as generation + 1). A claim nobody finished before its ``until`` (its
gateway died) is abandoned and the next generation may be claimed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import TidingsError
from ..transports.capabilities import replays_history

if TYPE_CHECKING:
    from ..client import AsyncClient
    from ..client.subscription import Subscription

log = logging.getLogger("tidings.gateway")

TOPIC = "_gateway.responses"
GROUP_PREFIX = "_gateway."
MAX_RECORD = 8 << 20  # bytes: a response larger than this is not stored (released)
CLAIM_MARGIN = 30.0  # seconds past the route's timeout before a claim counts as abandoned


@dataclass
class Stored:
    status: int
    body: bytes
    headers: dict[str, str]
    fingerprint: str  # route and body hash: one key, one request


@dataclass
class Entry:
    """The latest state of one key."""

    gen: int
    state: str  # "claimed", "done" or "released"
    owner: str  # the claim's random token
    fingerprint: str
    at: float  # epoch seconds of the record
    until: float = 0.0  # claimed: abandoned after this epoch time
    stored: Stored | None = None


class InProgress(Exception):
    """The key's first request is still being served (409)."""


class KeyReused(Exception):
    """The key was used for another request (422)."""


class KeyView:
    """Every key's latest record, as read from the topic; decides what a new request does."""

    def __init__(self, ttl: float, max_entries: int) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.entries: OrderedDict[str, Entry] = OrderedDict()

    def apply(self, key: str, doc: dict[str, Any], at: float) -> None:
        try:
            gen, state = int(doc["gen"]), str(doc["state"])
            owner, fingerprint = str(doc["owner"]), str(doc["fingerprint"])
        except (KeyError, TypeError, ValueError):
            return
        old = self.entries.get(key)
        if old is not None and (old.gen > gen or (old.gen == gen and state == "claimed")):
            return  # an older generation, or a claim already followed by its outcome
        entry = Entry(gen, state, owner, fingerprint, at, float(doc.get("until") or 0.0))
        if state == "done":
            try:
                body = base64.b64decode(doc["body"])
                entry.stored = Stored(int(doc["status"]), body, dict(doc["headers"]), fingerprint)
            except (KeyError, TypeError, ValueError):
                return
        self.entries[key] = entry
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)

    def get(self, key: str, now: float) -> Entry | None:
        entry = self.entries.get(key)
        if entry is not None and now - entry.at > self.ttl:
            del self.entries[key]
            return None
        return entry

    def decide(self, key: str, fingerprint: str, now: float) -> Stored | int:
        """The stored response to replay, or the generation to claim; InProgress/KeyReused."""
        entry = self.get(key, now)
        if entry is None:
            return 0
        if entry.state == "done":
            assert entry.stored is not None
            if entry.fingerprint != fingerprint:
                raise KeyReused(key)
            return entry.stored
        if entry.state == "claimed" and entry.until > now:
            raise InProgress(key)
        return entry.gen + 1  # released (a 5xx) or abandoned (its gateway died)


@dataclass
class Claim:
    key: str
    gen: int
    owner: str
    fingerprint: str


class SharedResponses:
    """The gateways' common store of idempotent responses, over the broker."""

    def __init__(self, ttl: float = 24 * 3600.0, max_entries: int = 100_000) -> None:
        self.ttl = ttl
        self.view = KeyView(ttl, max_entries)
        self.instance = secrets.token_hex(8)
        self.caught_up = asyncio.Event()
        self._changed = asyncio.Condition()
        self._client: AsyncClient | None = None
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def group(self) -> str:
        return GROUP_PREFIX + self.instance

    async def start(self, client: AsyncClient) -> None:
        """Create the topic if needed and read it from its start (then live)."""
        from ..client.registry.bus import ensure_topic

        self._client = client
        await ensure_topic(
            client, TOPIC, max_age=self.ttl, dedup_window=600.0, max_message_size=MAX_RECORD
        )
        await self._collect_orphans(client)
        ends: dict[int, int] = {}
        history = replays_history(client.transport)
        if history:
            info = await client.topic_info(TOPIC)
            ends = {p.partition: p.next_offset for p in info.partitions if p.next_offset > 0}
        self._sub = await client.subscribe(
            TOPIC, self.group, start="earliest" if history else "latest", auto_ack=True,
            prefetch=1000,
        )  # fmt: skip
        if not ends:
            self.caught_up.set()
        self._task = asyncio.create_task(self._read(ends))

    async def _collect_orphans(self, client: AsyncClient) -> None:
        """Delete the view groups of gateways that died without a goodbye (no member)."""
        try:
            info = await client.topic_info(TOPIC)
        except TidingsError:
            return
        for g in info.groups:
            if g.name.startswith(GROUP_PREFIX) and g.members == 0:
                with contextlib.suppress(TidingsError):
                    await client.delete_group(TOPIC, g.name)

    async def _read(self, ends: dict[int, int]) -> None:
        assert self._sub is not None
        remaining = dict(ends)
        while True:
            try:
                batch = await self._sub.next_batch(1000, timeout=1.0)
            except TidingsError as exc:
                log.warning("gateway: the idempotency store's reader stopped: %s", exc)
                return
            for message in batch:
                end = remaining.get(message.partition)
                if end is not None and message.offset + 1 >= end:
                    remaining.pop(message.partition)
                with contextlib.suppress(ValueError):
                    doc = json.loads(message.body)
                    if isinstance(doc, dict) and message.key is not None:
                        self.view.apply(message.key, doc, message.timestamp)
            if not remaining or not batch:  # at the end, or records expired under us
                self.caught_up.set()
            if batch:
                async with self._changed:
                    self._changed.notify_all()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._sub is not None and self._client is not None:
            with contextlib.suppress(TidingsError):
                await self._sub.close()
            with contextlib.suppress(TidingsError):
                await self._client.delete_group(TOPIC, self.group)

    async def _publish(self, key: str, doc: dict[str, Any], msg_id: str | None) -> bool:
        """Publish one record; False when the broker had ``msg_id`` already."""
        assert self._client is not None
        body = json.dumps(doc, separators=(",", ":")).encode()
        receipt = await self._client.publish(TOPIC, body, key=key, msg_id=msg_id)
        return not receipt.duplicate

    async def claim(self, key: str, fingerprint: str, busy_for: float) -> Stored | Claim:
        """The stored response to replay, or the claim of ``key`` for this request; raises
        InProgress (409) or KeyReused (422)."""
        async with asyncio.timeout(10.0):
            await self.caught_up.wait()
        for _ in range(3):
            decided = self.view.decide(key, fingerprint, time.time())
            if isinstance(decided, Stored):
                return decided
            claim = Claim(key, decided, secrets.token_hex(8), fingerprint)
            doc = {
                "state": "claimed", "gen": claim.gen, "owner": claim.owner,
                "fingerprint": fingerprint, "until": time.time() + busy_for + CLAIM_MARGIN,
            }  # fmt: skip
            if await self._publish(key, doc, f"{key}#{claim.gen}"):
                return claim
            # another request claimed this generation first (or the client's retry of ours
            # got through twice): the topic says whose it is
            entry = await self._wait_for(key, claim.gen)
            if entry is None:
                break  # not seen (a view that cannot replay history): treat as busy
            if entry.owner == claim.owner:
                return claim
            if entry.state == "claimed":
                break
            # done (replayed by the next decide) or released (claim the next generation)
        raise InProgress(key)

    async def _wait_for(self, key: str, gen: int, timeout: float = 2.0) -> Entry | None:
        def seen() -> bool:
            entry = self.view.entries.get(key)
            return entry is not None and entry.gen >= gen

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(seen)
        entry = self.view.entries.get(key)
        return entry if entry is not None and entry.gen == gen else None

    async def finish(self, claim: Claim, stored: Stored | None) -> None:
        """Record the outcome (None: not worth keeping, e.g. a 5xx the client may retry)."""
        doc: dict[str, Any] = {
            "state": "released", "gen": claim.gen, "owner": claim.owner,
            "fingerprint": claim.fingerprint,
        }  # fmt: skip
        if stored is not None:
            doc.update(
                state="done",
                status=stored.status,
                headers=stored.headers,
                body=base64.b64encode(stored.body).decode(),
            )
            if len(stored.body) * 4 // 3 + 4096 > MAX_RECORD:
                log.warning("gateway: a %d-byte response is too large to store", len(stored.body))
                doc = {k: doc[k] for k in ("gen", "owner", "fingerprint")} | {"state": "released"}
        try:
            await self._publish(claim.key, doc, None)
        except TidingsError as exc:  # the claim expires by itself; the next try runs again
            log.warning("gateway: could not store the response of a key: %s", exc)
            return
        # this instance answers a repeat from its view; apply at once, not when read back
        self.view.apply(claim.key, doc, time.time())
