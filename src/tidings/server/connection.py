"""One client connection on the broker: read, decode, dispatch, write.

Frames of one read are handled in order. Requests that only touch the engine are answered at
once; publishes run as tasks awaiting durability (consecutive PUBLISH frames to one topic in
one read become one engine call, so they share an append and a group commit). Replies and
deliveries collect in one buffer written once per event-loop iteration. When the socket's
buffer passes the high-water mark the connection stops reading requests and holds back
auto-ack credit until the client catches up. Any error while handling a frame is answered
with an ERROR frame; only an undecodable stream closes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, cast

from ..errors import ProtocolError, TidingsError, TransportUnavailable
from ..protocol import FrameDecoder, constants, decode_body, encode_frame
from ..protocol.messages import Error, Goodbye
from . import handlers, publishing

if TYPE_CHECKING:
    from ..protocol.framing import Frame
    from .app import BrokerServer
    from .auth import User
    from .members import ServerMember

log = logging.getLogger("tidings.server")


class ClientConnection(asyncio.Protocol):
    def __init__(self, server: BrokerServer, conn_id: str) -> None:
        self.server = server
        self.broker = server.runtime.broker
        self.id = conn_id
        self.peer = "?"
        self.client = ""
        self.version = 0
        self.max_frame_size = server.config.max_frame_size
        self.decoder = FrameDecoder(constants.CLIENT_TO_SERVER, constants.HANDSHAKE_MAX_FRAME_SIZE)
        self.transport: asyncio.Transport | None = None
        self.members: dict[int, ServerMember] = {}
        self.next_sub = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.out = bytearray()
        self.flush_scheduled = False
        self.closed = False
        self.paused = False
        self.over_since: float | None = None  # when the write buffer went over high water
        self.credit_held = False  # some member holds back credit until the buffer drains
        self.high_water = server.config.write_high_water
        self.last_received = self.last_sent = self.opened = time.monotonic()
        self.partial_since: float | None = None  # when the incomplete frame buffered began
        self.user: User | None = None  # the authenticated user (None: the broker has none)
        self.authenticating: list[Frame] | None = None  # frames held while a password is checked
        self.may_publish: set[str] = set()  # topics this user was found allowed to publish to
        self.reply_grants: dict[str, int] = {}  # reply topic -> replies it may still publish
        self.max_buffered = 0
        self.frames_in = self.frames_out = 0
        self._loop = asyncio.get_running_loop()
        self._origin: str | None = None

    @property
    def origin(self) -> str:
        """Who this connection is, for the message trace's ``published`` events (built on
        first use: publishes come after the handshake, which sets the user and client)."""
        if self._origin is None:
            who = [self.peer]
            if self.user is not None:
                who.append(f"user {self.user.name}")
            if self.client:
                who.append(self.client)
            self._origin = f"connection {self.id} ({', '.join(who)})"
        return self._origin

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream server hands its protocols stream transports; asyncio.Protocol types the
        # hook with the base class only (a cast, not a check: uvloop's are not subclasses).
        self.transport = stream = cast("asyncio.Transport", transport)
        peer = stream.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        high = self.server.config.write_high_water
        stream.set_write_buffer_limits(high=high, low=high // 4)
        if not self.server.admit(self):
            self.fail(
                TransportUnavailable(
                    "too many connections: the broker's max_connections is reached; retry "
                    "later or raise --max-connections"
                )
            )

    def data_received(self, data: bytes) -> None:
        now = self.last_received = time.monotonic()
        try:
            frames = self.decoder.feed(data)
        except ProtocolError as exc:
            log.warning("closing %s (%s): %s", self.id, self.peer, exc)
            self.fail(exc)
            return
        # When the frame now in the decoder began: a frame trickled in a byte at a time would
        # hold its buffer (up to the max frame size) forever; the heartbeat sweep limits it.
        if not self.decoder.buffered:
            self.partial_since = None
        elif frames or self.partial_since is None:
            self.partial_since = now
        self.frames_in += len(frames)
        if self.authenticating is not None:
            self.authenticating += frames
            return
        if self.version == 0:
            frames = handlers.handshake(self, frames)
        self.dispatch(frames)

    def dispatch(self, frames: list[Frame]) -> None:
        publish_run = None
        for frame in frames:
            ftype = frame.type
            if ftype == constants.PUBLISH:
                publish_run = publishing.collect(self, frame, publish_run)
                continue
            if publish_run is not None:
                publishing.start(self, publish_run)
                publish_run = None
            if ftype == constants.HEARTBEAT:
                continue
            self.handle(ftype, frame.request_id, frame)
        if publish_run is not None:
            publishing.start(self, publish_run)

    def handle(self, ftype: int, rid: int, frame: Frame) -> None:
        try:
            body = decode_body(frame)  # the Struct of ftype, which HANDLERS[ftype] takes
            reply = handlers.HANDLERS[ftype](self, body)
        except TidingsError as exc:
            if rid != constants.NO_REPLY or ftype == constants.CREDIT:
                self.error(rid, exc)
            return
        except Exception as exc:  # a bug must not take the broker down: answer and go on
            log.exception(
                "internal error handling %s from %s", constants.frame_name(ftype), self.id
            )
            self.error(rid, TidingsError(f"internal error: {type(exc).__name__}: {exc}"))
            return
        if asyncio.iscoroutine(reply):  # it waits for a commit: answer when done
            task = self._loop.create_task(self._answer_later(ftype, rid, reply))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        elif reply is not None:
            self.write(ftype | constants.REPLY_BIT, rid, reply)
            if ftype == constants.SUBSCRIBE:
                handlers.after_subscribe(self, reply)

    async def _answer_later(self, ftype: int, rid: int, reply: Coroutine[Any, Any, object]) -> None:
        try:
            body = await reply
        except TidingsError as exc:
            self.error(rid, exc)
        except Exception as exc:
            log.exception(
                "internal error handling %s from %s", constants.frame_name(ftype), self.id
            )
            self.error(rid, TidingsError(f"internal error: {type(exc).__name__}: {exc}"))
        else:
            self.write(ftype | constants.REPLY_BIT, rid, body)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        log.debug("connection %s (%s) closed: %s", self.id, self.peer, exc or "by peer")
        self.server.forget(self)
        self.release()

    def release(self) -> None:
        """Leave every group (un-acked deliveries return at once) and drop reply topics."""
        members, self.members = self.members, {}
        for member in members.values():
            if member.member_id:
                try:
                    self.broker.leave(member.member_id)
                except TidingsError:
                    pass
        broker = self.broker
        try:
            owned = [
                t.name
                for t in broker.list_topics()
                if t.temporary and broker.topic_owner(t.name) is self
            ]
            broker.drop_owner(self)
            for name in owned:
                self.server.members_gone(name, None, f"reply topic {name!r} was deleted")
        except TidingsError as exc:
            log.warning("dropping the reply topics of %s failed: %s", self.id, exc)

    def pause_writing(self) -> None:
        """Above the write high-water mark: read no requests and dispatch nothing more to
        this connection's members until the client has read down to the low mark."""
        self.paused = True
        self.over_since = time.monotonic()
        self.server.paused += 1
        self.pause_reading()
        self._pause_members(True)

    def _pause_members(self, paused: bool) -> None:
        for member in list(self.members.values()):
            if member.member_id:
                self.broker.pause_member(member.member_id, paused)

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            with contextlib.suppress(RuntimeError):  # already closing
                self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed and not self.paused:
            with contextlib.suppress(RuntimeError):
                self.transport.resume_reading()

    def resume_writing(self) -> None:
        self.paused = False
        self.over_since = None
        self.last_received = time.monotonic()  # not read while paused: not silent either
        self.server.paused -= 1
        if self.transport is not None and not self.closed:
            with contextlib.suppress(RuntimeError):
                self.transport.resume_reading()
        self.release_credit()
        if not self.closed:
            self._pause_members(False)

    def over_high_water(self) -> bool:
        """True while this client has more bytes waiting than the high-water mark."""
        return self.paused or len(self.out) > self.high_water

    def release_credit(self) -> None:
        if self.credit_held:
            self.credit_held = False
            for member in list(self.members.values()):
                member.release_credit()

    # -- writing -----------------------------------------------------------------------------

    def write(self, ftype: int, rid: int, body: object) -> None:
        encode_frame(self.out, ftype, rid, body)
        self.frames_out += 1
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self._loop.call_soon(self.flush)

    def error(self, rid: int, exc: TidingsError) -> None:
        self.write(constants.ERROR, rid, Error(code=exc.code, message=exc.message))

    def flush(self) -> None:
        self.flush_scheduled = False
        transport = self.transport
        if not self.out or transport is None or self.closed:
            return
        data, self.out = self.out, bytearray()
        transport.write(data)
        self.last_sent = time.monotonic()
        buffered = transport.get_write_buffer_size()
        if buffered > self.max_buffered:
            self.max_buffered = buffered
            if buffered > self.server.max_buffered:
                self.server.max_buffered = buffered
        if self.credit_held and not self.paused:
            self.release_credit()

    def fail(self, exc: TidingsError) -> None:
        """Answer with an ERROR (request id 0) and close this connection only."""
        self.error(constants.NO_REPLY, exc)
        self.close()

    def close(self, goodbye: str | None = None) -> None:
        if goodbye is not None and self.version:
            self.write(constants.GOODBYE, constants.NO_REPLY, Goodbye(reason=goodbye))
        self.flush()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def broker_topics(self) -> set[str]:
        """The names of the topics that exist now."""
        return {t.name for t in self.broker.list_topics()}

    def buffered(self) -> int:
        transport = self.transport
        size = len(self.out)
        if transport is not None and not self.closed:
            size += transport.get_write_buffer_size()
        return size
