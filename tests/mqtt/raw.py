"""A byte-level MQTT client for tests that need exact packets (DUP flags, packet ids, a resend
after a crash): the codec's encoder on a plain socket, every wait bounded."""

from __future__ import annotations

import socket
import time

from tidings.server.mqtt import codec as m


class Raw:
    def __init__(self, port: int, version: int = m.V5) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.version = version
        self.decoder = m.PacketDecoder(server=False)
        self.decoder.version = version
        self.pending: list[m.Packet] = []

    def connect(self, client_id: str, **fields: object) -> m.Connack:
        self.send(m.Connect(client_id, self.version, **fields))  # type: ignore[arg-type]
        connack = self.next()
        assert isinstance(connack, m.Connack), connack
        return connack

    def send(self, *packets: m.Packet) -> None:
        self.sock.sendall(b"".join(m.encode(p, self.version) for p in packets))

    def next(self, timeout: float = 10.0) -> m.Packet:
        deadline = time.monotonic() + timeout
        while not self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no packet from the server")
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            self.pending += self.decoder.feed(data)
        return self.pending.pop(0)

    def take(self, n: int, timeout: float = 10.0) -> list[m.Packet]:
        return [self.next(timeout) for _ in range(n)]

    def silent(self, wait: float = 0.5) -> bool:
        """Nothing more arrives within ``wait`` seconds."""
        try:
            packet = self.next(wait)
        except TimeoutError:
            return True
        self.pending.insert(0, packet)
        return False

    def subscribe(self, pid: int, *subs: m.Subscription) -> m.Suback:
        self.send(m.Subscribe(pid, list(subs)))
        suback = self.next()
        assert isinstance(suback, m.Suback), suback
        return suback

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
