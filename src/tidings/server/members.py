"""Group members held by one client connection: the engine's deliver callback and credit.

The engine calls :meth:`ServerMember.deliver` synchronously; it encodes a DELIVER frame into
the connection's write buffer and never blocks. Deliveries that arrive while the member is
still joining (the engine dispatches inside ``join``) wait until the SUBSCRIBE reply is
written, so a client always learns its subscription id before its first delivery.

Flow control: a shared member holds at most ``prefetch`` un-settled deliveries (the engine
enforces it). An auto-ack member's credit comes back from the client; while the connection is
over its write high-water mark that credit is held back, so a reader that stops reading stops
receiving.

A member the broker closes (stuck: its leases kept expiring) is removed from its connection
and the client gets a SUB_CLOSED with the reason (``MemberStuck``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from ..errors import TidingsError
from ..model import Delivery, GroupSpec
from ..protocol import constants as c
from ..protocol.messages import SubClosed
from .replies import grant

if TYPE_CHECKING:
    from .connection import ClientConnection

_astuple = msgspec.structs.astuple


class ServerMember:
    __slots__ = ("conn", "held_credit", "member_id", "ready", "spec", "stash", "sub_id")

    def __init__(self, conn: ClientConnection, sub_id: int, spec: GroupSpec) -> None:
        self.conn = conn
        self.sub_id = sub_id
        self.spec = spec
        self.member_id = ""
        self.ready = False
        self.stash: list[Delivery] = []
        self.held_credit = 0

    def deliver(self, deliveries: list[Delivery]) -> None:
        if not self.ready:
            self.stash.extend(deliveries)
            return
        conn = self.conn
        if conn.closed:
            return
        grant(conn, deliveries)  # a request's reply-to may now get this connection's reply
        rows = [_astuple(d) for d in deliveries]
        limit = conn.max_frame_size // 2
        if sum(len(d.body) for d in deliveries) + 256 * len(rows) <= limit:
            conn.write(c.DELIVER, c.NO_REPLY, (self.sub_id, rows))
            return
        chunk: list[tuple[Any, ...]] = []
        size = 0
        for d, row in zip(deliveries, rows, strict=True):
            if chunk and size + len(d.body) + 256 > limit:
                conn.write(c.DELIVER, c.NO_REPLY, (self.sub_id, chunk))
                chunk, size = [], 0
            chunk.append(row)
            size += len(d.body) + 256
        conn.write(c.DELIVER, c.NO_REPLY, (self.sub_id, chunk))

    def closed(self, error: TidingsError) -> None:
        """The broker removed the member (it was stuck): tell the client why."""
        conn = self.conn
        if conn.members.get(self.sub_id) is self:
            del conn.members[self.sub_id]
        if not conn.closed:
            conn.write(c.SUB_CLOSED, c.NO_REPLY, SubClosed(self.sub_id, error.code, error.message))

    def joined(self, member_id: str) -> None:
        """The SUBSCRIBE reply is written: now the stashed deliveries may follow it."""
        self.member_id = member_id
        self.ready = True
        if self.conn.paused:  # joined while its connection is over the high-water mark
            self.conn.broker.pause_member(member_id, True)
        stash, self.stash = self.stash, []
        if stash:
            self.deliver(stash)

    def credit(self, n: int) -> None:
        conn = self.conn
        if conn.over_high_water():
            self.held_credit += n
            conn.credit_held = True
            return
        conn.broker.add_credit(self.member_id, n)

    def release_credit(self) -> None:
        n, self.held_credit = self.held_credit, 0
        if n:
            self.conn.broker.add_credit(self.member_id, n)
