"""Exactly-once for QoS 2 PUBLISHes from clients (MQTT 5.0 §4.3.3, 3.1.1 §4.3.3): how a
resent PUBLISH is told from a new one, also after a broker crash.

While the broker runs, the session remembers each packet id it stored and answered with
PUBREC until the client's PUBREL (``Session.received``): a PUBLISH with that packet id again
is answered with PUBREC and not stored. That memory does not survive a crash, so each QoS 2
message is also stored under a producer message id made of the client id, the packet id and
a digest of the topic, payload and properties (what a client resends unchanged, §4.3.3:
"the same Packet Identifier", DUP set). The broker's duplicate detection (the topic's dedup
window, 120 s by default, rebuilt from the log at start) then recognises a PUBLISH the client
resends after the restart (DUP=1) and does not store it again.

A first attempt (DUP=0) is always a new message (§3.3.1.1), even when the broker took it for
a duplicate of an earlier identical message with the same packet id: then it is stored again
without a producer id. What remains: a new message identical to one the same
client sent with the same packet id within the dedup window, whose first attempt did not
reach the log before a crash, is taken for that earlier message's resend.
"""

from __future__ import annotations

import hashlib

from . import codec as m

PREFIX = "mqtt2:"


def message_id(client_id: str, packet: m.Publish) -> str:
    """The producer message id of a QoS 2 PUBLISH of ``client_id``."""
    h = hashlib.blake2b(digest_size=12)
    h.update(packet.topic.encode())
    h.update(b"\0")
    h.update(repr(sorted(packet.properties.items())).encode())
    h.update(b"\0")
    h.update(packet.payload)
    return f"{PREFIX}{client_id}:{packet.packet_id}:{h.hexdigest()}"
