"""A lingering close: ending a TCP connection after a packet the client must still read (a
CONNACK or DISCONNECT with a reason code, MQTT 5.0 §4.13).

Closing a socket whose input holds unread bytes makes the kernel answer with a reset, and a
reset may destroy the last packet before the client has read it; a client that keeps
writing (PUBRELs for the PUBRECs it reads, say) gets a reset for its next write instead of
the reason. So the socket is half-closed instead (FIN after the last packet), what the
client still sends is read and dropped, and the socket closes at the client's end of
stream or after ``LINGER`` seconds, whichever is first (as HTTP servers' lingering close).
"""

from __future__ import annotations

import asyncio
import contextlib

LINGER = 2.0  # seconds a half-closed connection is drained at most


class _Drain(asyncio.Protocol):
    """What is left of the connection: reads and drops, closes at end of stream."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.timer = asyncio.get_running_loop().call_later(LINGER, transport.close)

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.timer.cancel()


def lingering_close(transport: asyncio.Transport) -> bool:
    """Half-close ``transport`` and drain it (see the module); False, and nothing done, where
    it cannot be half-closed (TLS, WebSocket): the caller closes it."""
    can = False
    with contextlib.suppress(NotImplementedError):
        can = transport.can_write_eof()
    if not can or transport.is_closing():
        return False
    transport.set_protocol(_Drain(transport))
    transport.write_eof()  # after what was written: the client reads it all, then EOF
    transport.resume_reading()
    return True
