"""MQTT over WebSocket: one ASGI WebSocket connection as the byte stream of an MQTT connection.

The HTTP app mounts :func:`serve_websocket` on ``--mqtt-websocket`` (``/mqtt``). The client
must offer the ``mqtt`` subprotocol (MQTT 5.0 section 6; ``mqttv3.1`` of older clients is
taken too); MQTT packets travel in binary frames, one frame may hold any part of a packet.
:class:`WebSocketTransport` gives :class:`~.listener.MqttConnection` the transport methods it
uses, so the connection code is the same as on the TCP and TLS ports.

This module imports nothing from Starlette: it speaks to any object with Starlette's
``WebSocket`` methods (``accept``, ``receive``, ``send_bytes``, ``close``, ``scope``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .listener import MqttListener

log = logging.getLogger("tidings.server.mqtt")

SUBPROTOCOLS = ("mqtt", "mqttv3.1")
DRAIN_TIMEOUT = 5.0  # seconds the last packets (a refusing CONNACK, a DISCONNECT) get to go out
POLICY_VIOLATION = 1008  # WebSocket close code: a text frame, or no mqtt subprotocol


class WebSocketTransport(asyncio.Transport):
    """What an MqttConnection writes goes to a queue that a task sends as binary frames."""

    def __init__(self, peer: Any) -> None:
        super().__init__()
        self.peer = peer
        self.out: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.reading = asyncio.Event()
        self.reading.set()
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self.closing:
            self.out.put_nowait(bytes(data))

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            self.out.put_nowait(None)

    def abort(self) -> None:
        self.close()

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.reading.clear()

    def resume_reading(self) -> None:
        self.reading.set()

    def is_reading(self) -> bool:
        return self.reading.is_set()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peer if name == "peername" else default


async def serve_websocket(listener: MqttListener | None, websocket: Any) -> None:
    """Serve one MQTT client on an accepted-to-be WebSocket until either side closes."""
    offered = websocket.scope.get("subprotocols") or []
    chosen = next((p for p in SUBPROTOCOLS if p in offered), None)
    if listener is None or chosen is None:
        why = "MQTT is off" if listener is None else f"no mqtt subprotocol (offered {offered})"
        log.warning("mqtt over websocket refused: %s", why)
        await websocket.close(POLICY_VIOLATION)
        return
    await websocket.accept(subprotocol=chosen)
    client = websocket.scope.get("client")
    transport = WebSocketTransport(tuple(client) if client else "websocket")
    conn = listener.new_connection()
    conn.connection_made(transport)
    writer = asyncio.get_running_loop().create_task(_send(websocket, transport))
    try:
        while not transport.closing:
            await transport.reading.wait()
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            data = message.get("bytes")
            if data is None:  # MQTT 5.0 6.0.0-1: a text frame closes the connection
                log.warning("mqtt %s (%s): a text WebSocket frame: closing", conn.id, conn.peer)
                transport.close()
                break
            conn.data_received(data)
    except Exception as exc:  # the client went away mid-frame
        log.debug("mqtt %s: websocket ended: %r", conn.id, exc)
    finally:
        transport.close()
        conn.connection_lost(None)
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(writer), DRAIN_TIMEOUT)
        writer.cancel()


async def _send(websocket: Any, transport: WebSocketTransport) -> None:
    """Send what the connection wrote; at its close, close the WebSocket (the client's
    closing handshake then ends the reading side)."""
    try:
        while True:
            data = await transport.out.get()
            if data is None:
                break
            while not transport.out.empty():  # coalesce what is queued into one frame
                more = transport.out.get_nowait()
                if more is None:
                    transport.out.put_nowait(None)
                    break
                data += more
            await websocket.send_bytes(data)
        with contextlib.suppress(Exception):
            await websocket.close()
    except Exception as exc:  # the peer is gone
        log.debug("mqtt websocket send ended: %r", exc)
