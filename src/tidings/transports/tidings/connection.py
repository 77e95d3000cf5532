"""One TCP connection to a broker: the handshake, pipelined requests and pushed frames.

Requests are written into one buffer and flushed once per event-loop iteration, so many
operations started together travel in one write. Each gets a request id; its reply (in any
order) resolves the future registered under that id. Pushed frames (DELIVER, SUB_CLOSED) go
to the owner's callbacks. Everything else about reconnecting lives in the transport.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, cast

from ...errors import ProtocolError, error_for_code
from ...protocol import FrameDecoder, constants, decode_body, encode_frame
from ...protocol.handshake import hello
from ...protocol.messages import Error, Goodbye, Welcome

log = logging.getLogger("tidings.transports.tidings")

# A reply hook runs synchronously when a reply arrives, before later frames of the same read
# are handled (SUBSCRIBE uses it so the deliveries that follow find their subscription).
Hook = Callable[[Any], None]


class Disconnected(Exception):
    """The connection closed while a request was outstanding. Internal: the transport
    retries the request or raises ConnectionLost in its place."""


class ForeignServer(Exception):
    """Before WELCOME the server sent bytes that are not tidings frames: it is some other
    server. Internal: the transport says what it looks like (protocol/foreign.py)."""

    def __init__(self, answer: bytes) -> None:
        super().__init__("not a tidings broker")
        self.answer = answer


class Connection(asyncio.Protocol):
    def __init__(
        self,
        on_push: Callable[[int, object], None],
        on_lost: Callable[[Connection, BaseException | None], None],
    ) -> None:
        self._on_push = on_push
        self._on_lost = on_lost
        self._decoder = FrameDecoder(constants.SERVER_TO_CLIENT, constants.HANDSHAKE_MAX_FRAME_SIZE)
        self._pending: dict[int, tuple[asyncio.Future[Any], Hook | None]] = {}
        self._out = bytearray()
        self._flush_scheduled = False
        self._next_id = 0
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._writable = asyncio.Event()
        self._writable.set()
        self.closed = False
        self.goodbye: str | None = None
        self.welcome: Welcome | None = None
        self.answer = b""  # the first bytes received before WELCOME (naming a foreign server)
        self.last_received = time.monotonic()
        self.last_sent = self.last_received

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream connection (TCP or TLS): its transport is a full asyncio.Transport
        self._transport = cast(asyncio.Transport, transport)
        self._transport.set_write_buffer_limits(high=4 << 20)

    def data_received(self, data: bytes) -> None:
        self.last_received = time.monotonic()
        if self.welcome is None and len(self.answer) < 256:
            self.answer += data[: 256 - len(self.answer)]
        try:
            frames = self._decoder.feed(data)
        except ProtocolError as exc:
            if self.welcome is None:  # no broker: some other server answered the HELLO
                self._fail_pending(ForeignServer(self.answer))
            else:
                log.error("broker sent an undecodable stream, closing: %s", exc)
            self.abort(exc)
            return
        pending = self._pending
        for frame in frames:
            ftype = frame.type
            rid = frame.request_id
            try:
                if ftype == constants.DELIVER or ftype == constants.SUB_CLOSED:
                    self._on_push(ftype, decode_body(frame))
                    continue
                if ftype == constants.HEARTBEAT:
                    continue
                if ftype == constants.GOODBYE:
                    goodbye = decode_body(frame, Goodbye)
                    self.goodbye = goodbye.reason or "broker closing"
                    continue
                entry = pending.pop(rid, None)
                if entry is None:
                    if ftype == constants.ERROR:
                        self._connection_error(decode_body(frame, Error))
                    continue  # a reply to a request that timed out
                fut, hook = entry
                if ftype == constants.ERROR:
                    err = decode_body(frame, Error)
                    if not fut.done():
                        fut.set_exception(error_for_code(err.code, err.message))
                    continue
                body = decode_body(frame)
                if hook is not None:
                    hook(body)
                if not fut.done():
                    fut.set_result(body)
            except ProtocolError as exc:
                entry = pending.pop(rid, None)
                if entry is not None and not entry[0].done():
                    entry[0].set_exception(exc)
                else:
                    log.error("bad %s frame from the broker: %s", constants.frame_name(ftype), exc)

    def _connection_error(self, err: Error) -> None:
        """An ERROR about the connection itself: before WELCOME it fails the handshake."""
        log.warning("broker error: %s (code %s)", err.message, err.code)
        if self.welcome is None:
            self._fail_pending(error_for_code(err.code, err.message))

    def _fail_pending(self, exc: BaseException) -> None:
        for fut, _ in self._pending.values():
            if not fut.done():
                fut.set_exception(exc)
        self._pending.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._writable.set()
        reason = self.goodbye or (str(exc) if exc else "connection closed by the broker")
        if self.welcome is None and self.answer:  # a few bytes that were no frame, then EOF
            self._fail_pending(ForeignServer(self.answer))
        self._fail_pending(Disconnected(f"connection to the broker lost: {reason}"))
        self._on_lost(self, exc)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # -- sending -----------------------------------------------------------------------------

    def request(
        self, frame_type: int, body: object, hook: Hook | None = None
    ) -> asyncio.Future[Any]:
        """Send a request; the future gets the decoded reply or the error it came back with."""
        fut = self._loop.create_future()
        if self.closed:
            fut.set_exception(Disconnected("connection to the broker lost"))
            return fut
        rid = self._next_id = (self._next_id % constants.MAX_REQUEST_ID) + 1
        self._pending[rid] = (fut, hook)
        encode_frame(self._out, frame_type, rid, body)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        fut.request_id = rid  # type: ignore[attr-defined]  # the id rides on the future: see forget
        return fut

    def send(self, frame_type: int, body: object) -> None:
        """Send a frame that wants no reply (HEARTBEAT, CREDIT)."""
        if self.closed:
            return
        encode_frame(self._out, frame_type, constants.NO_REPLY, body)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def forget(self, fut: asyncio.Future[Any]) -> None:
        """Stop waiting for ``fut``'s reply (it timed out)."""
        self._pending.pop(getattr(fut, "request_id", -1), None)

    def flush(self) -> None:
        """Write what is buffered now, not at the end of the loop turn."""
        self._flush()

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out and self._transport is not None and not self.closed:
            data, self._out = self._out, bytearray()
            self._transport.write(data)
            self.last_sent = time.monotonic()

    @property
    def writable(self) -> bool:
        return self._writable.is_set()

    async def drain(self) -> None:
        await self._writable.wait()

    # -- lifecycle ---------------------------------------------------------------------------

    async def handshake(self, client: str, token: str | None, user: str | None = None) -> Welcome:
        welcome: Welcome = await self.request(constants.HELLO, hello(client, token, user))
        self.welcome = welcome
        self._decoder.max_frame_size = welcome.max_frame_size
        return welcome

    def close(self) -> None:
        self._flush()
        if self._transport is not None:
            self._transport.close()

    def abort(self, exc: BaseException | None = None) -> None:
        if self._transport is not None:
            self._transport.abort()
