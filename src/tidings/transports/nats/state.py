"""The transport's own durable state in JetStream: group members, partition holders and
per-message state.

One stream, ``TIDINGS-STATE``, keeps the last message of each subject (like a key-value
bucket): a member's latest heartbeat under ``tidings-state.members.<topic>.<group>.<member>``,
who holds an ordered group's partition under ``tidings-state.holders.<topic>.<group>.<p>``
(written with compare-and-set on the subject's last sequence, see
:mod:`tidings.transports.rules.assignment`) and, for a message that was nacked with an error
text or held back by a delay, that text and the number of early (delay) deliveries under
``tidings-state.msg.<stream>.<consumer>.<seq>``. Entries expire after seven days. The stream
is replicated 3 ways on a cluster, once otherwise.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext, api

from ..rules.assignment import Heartbeat, Holder
from .errors import translated
from .naming import (
    STATE_STREAM,
    STATE_SUBJECTS,
    holder_subject,
    members_subject,
    msg_state_subject,
)

STATE_MAX_AGE = 7 * 24 * 3600.0
H_LEFT = "tidings-left"
H_RELEASED = "tidings-released"  # "1": released with every pull request ended, "0": maybe not
EXPECTED_LAST_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"
WRONG_LAST_SEQUENCE = 10071  # JetStream's error code when the compare-and-set lost


class StateStore:
    def __init__(self, nc: Client, js: JetStreamContext) -> None:
        self._nc = nc
        self._js = js

    async def ensure(self) -> None:
        with translated("create the tidings state stream"):
            try:
                await self._js.stream_info(STATE_STREAM)
                return
            except nats.js.errors.NotFoundError:
                pass
            for replicas in (3, 1):
                config = api.StreamConfig(
                    name=STATE_STREAM,
                    description="tidings transport state (group members, message errors)",
                    subjects=[STATE_SUBJECTS],
                    max_msgs_per_subject=1,
                    max_age=STATE_MAX_AGE,
                    storage=api.StorageType.FILE,
                    num_replicas=replicas,
                    duplicate_window=1.0,
                )
                try:
                    await self._js.add_stream(config)
                    return
                except nats.js.errors.APIError as exc:
                    if exc.err_code == 10058:  # created meanwhile by another connection
                        return
                    if replicas == 1 or exc.err_code not in (10074, 10023):
                        raise

    # per-message state -------------------------------------------------------------------
    async def get_msg_state(self, stream: str, consumer: str, seq: int) -> dict[str, Any]:
        subj = msg_state_subject(stream, consumer, seq)
        with translated("read message state"):
            try:
                raw = await self._js.get_msg(STATE_STREAM, subject=subj)
            except nats.js.errors.NotFoundError:
                return {}
        try:
            state: dict[str, Any] = json.loads(raw.data or b"{}")  # put_msg_state wrote a dict
        except ValueError:
            return {}
        return state

    async def put_msg_state(
        self, stream: str, consumer: str, seq: int, state: dict[str, Any]
    ) -> None:
        with translated("save message state"):
            await self._js.publish(
                msg_state_subject(stream, consumer, seq), json.dumps(state).encode()
            )

    async def drop_msg_state(self, stream: str, consumer: str, seq: int) -> None:
        with translated("drop message state"):
            await self._js.purge_stream(
                STATE_STREAM, subject=msg_state_subject(stream, consumer, seq)
            )

    # members ----------------------------------------------------------------------------
    async def heartbeat(self, topic: str, group: str, member: str, left: bool = False) -> None:
        headers = {H_LEFT: "1"} if left else None
        with translated("group heartbeat"):
            await self._js.publish(members_subject(topic, group, member), b"", headers=headers)

    async def members(self, topic: str, group: str) -> list[Heartbeat]:
        """Every member entry of the group (alive or not; the caller judges by time)."""
        pattern = members_subject(topic, group)
        with translated("read group members"):
            info = await self._js.stream_info(STATE_STREAM, subjects_filter=pattern)
            subjects = list((info.state.subjects or {}).keys())
            entries = await asyncio.gather(*(self._member(subj) for subj in subjects))
        return [e for e in entries if e is not None]

    async def _member(self, subj: str) -> Heartbeat | None:
        try:
            raw = await self._js.get_msg(STATE_STREAM, subject=subj)
        except nats.js.errors.NotFoundError:
            return None
        left = bool(raw.headers and raw.headers.get(H_LEFT))
        when = raw.time.timestamp() if raw.time else 0.0
        return Heartbeat(subj.rsplit(".", 1)[1], when, left)

    async def forget_group(self, topic: str, group: str) -> None:
        with translated("drop group members"):
            await self._js.purge_stream(STATE_STREAM, subject=members_subject(topic, group, ">"))
            await self._js.purge_stream(STATE_STREAM, subject=holder_subject(topic, group, ">"))

    # partition holders ----------------------------------------------------------------------
    async def holder(self, topic: str, group: str, partition: int) -> Holder | None:
        """Who holds ``partition`` of an ordered group (None: nobody ever did)."""
        with translated("read a partition's holder"):
            try:
                raw = await self._js.get_msg(
                    STATE_STREAM, subject=holder_subject(topic, group, partition)
                )
            except nats.js.errors.NotFoundError:
                return None
        released = (raw.headers or {}).get(H_RELEASED)
        member = (raw.data or b"").decode()
        return Holder(member, released is not None, raw.seq or 0, released != "0")

    async def hold(
        self,
        topic: str,
        group: str,
        partition: int,
        member: str,
        version: int,
        release: bool = False,
        drained: bool = True,
    ) -> int | None:
        """Record ``member`` as holding ``partition`` (or, with ``release``, as having released
        it, ``drained`` saying whether its pull requests had all ended) if the record is still
        at ``version`` (0: none yet); the new version, or None when another member wrote
        first."""
        headers = {EXPECTED_LAST_SUBJECT_SEQ: str(version)}
        if release:
            headers[H_RELEASED] = "1" if drained else "0"
        with translated("record a partition's holder"):
            try:
                ack = await self._js.publish(
                    holder_subject(topic, group, partition), member.encode(), headers=headers
                )
            except nats.js.errors.APIError as exc:
                if exc.err_code == WRONG_LAST_SEQUENCE:
                    return None
                raise
        return ack.seq
