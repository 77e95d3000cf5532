"""MQTT 5.0 topic aliases (§3.3.2.3.4), both directions, per network connection.

From the client: CONNACK announces ``TOPIC_ALIAS_MAXIMUM``; a PUBLISH with a topic and an
alias sets the alias, one with an empty topic and an alias uses it. An alias above the
maximum (or 0, which the codec refuses) is DISCONNECT 0x94, an empty topic with an alias
that was never set a protocol error 0x82 (§3.3.2.3.4). To the client: up to the Topic Alias
Maximum of its CONNECT (0, the default: none), the first PUBLISH of a topic sets an alias
and the next ones send an empty topic with it; when all are taken, topics go in full.
Aliases end with the connection (a resumed session starts without them).
"""

from __future__ import annotations

from . import codec as m

TOPIC_ALIAS_MAXIMUM = 64  # aliases a client may set per connection
TOPIC_ALIAS_INVALID = 0x94


class TopicAliases:
    __slots__ = ("_in", "_out", "client_maximum")

    def __init__(self, client_maximum: int = 0) -> None:
        self.client_maximum = client_maximum  # what the client takes (its CONNECT)
        self._in: dict[int, str] = {}
        self._out: dict[str, int] = {}

    def inbound(self, packet: m.Publish) -> None:
        """Resolve the alias of a PUBLISH from the client (its topic set, the alias gone)."""
        alias = packet.properties.pop("topic_alias", None)
        if alias is None:
            return
        if not 1 <= alias <= TOPIC_ALIAS_MAXIMUM:
            raise m.MalformedPacket(
                f"topic alias {alias} is above the maximum of {TOPIC_ALIAS_MAXIMUM}",
                TOPIC_ALIAS_INVALID,
            )
        if packet.topic:
            self._in[alias] = packet.topic
            return
        topic = self._in.get(alias)
        if topic is None:
            raise m.MalformedPacket(
                f"PUBLISH with an empty topic and topic alias {alias}, which was never set",
                m.PROTOCOL_ERROR,
            )
        packet.topic = topic

    def outbound(self, packet: m.Publish) -> None:
        """Use (or set) an alias for a PUBLISH to the client, if it takes aliases."""
        if not self.client_maximum:
            return
        alias = self._out.get(packet.topic)
        if alias is not None:
            packet.properties["topic_alias"] = alias
            packet.topic = ""
        elif len(self._out) < self.client_maximum:
            alias = self._out[packet.topic] = len(self._out) + 1
            packet.properties["topic_alias"] = alias
