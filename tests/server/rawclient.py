"""A bare protocol client for tests that must send what a well-behaved client never would."""

from __future__ import annotations

import asyncio

from tidings.protocol import FrameDecoder, constants, decode_body, frame_bytes, hello


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = FrameDecoder(constants.SERVER_TO_CLIENT, constants.MAX_FRAME_SIZE_LIMIT)
        self.frames: list = []

    @classmethod
    async def open(cls, url: str, *, handshake: bool = True, limit: int = 1 << 16) -> RawClient:
        host, port = url.removeprefix("tidings://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port), limit=limit)
        client = cls(reader, writer)
        if handshake:
            client.send(constants.HELLO, 1, hello("raw-test"))
            frame = await client.next_frame()
            assert frame.type == constants.WELCOME, frame
        return client

    def send(self, frame_type: int, request_id: int, body: object) -> None:
        self.writer.write(frame_bytes(frame_type, request_id, body))

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    async def next_frame(self, timeout: float = 5.0, skip_heartbeats: bool = True):
        while True:
            while self.frames:
                frame = self.frames.pop(0)
                if skip_heartbeats and frame.type == constants.HEARTBEAT:
                    continue
                return frame
            data = await asyncio.wait_for(self.reader.read(1 << 16), timeout)
            if not data:
                raise ConnectionResetError("the broker closed the connection")
            self.frames += self.decoder.feed(data)

    async def request(self, frame_type: int, request_id: int, body: object):
        self.send(frame_type, request_id, body)
        frame = await self.next_frame()
        return frame, decode_body(frame)

    async def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """Read (discarding frames) until EOF; True if the broker closed the connection."""
        try:
            async with asyncio.timeout(timeout):
                while await self.reader.read(1 << 16):
                    pass
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        return True

    def close(self) -> None:
        self.writer.close()
