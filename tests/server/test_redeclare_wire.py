"""CREATE_TOPIC with exist_ok on the wire: the broker compares the settings the request names
in ``given`` and answers ERROR 422 (TopicConflict) when they differ, so a client of the
protocol other than the Python one is told too. A request without ``given`` (older clients)
gets the existing topic, as before."""

from __future__ import annotations

from tidings.model import TopicSpec
from tidings.protocol import constants
from tidings.protocol import messages as m

from .rawclient import RawClient


async def test_a_conflicting_declaration_on_the_wire_is_refused(broker, name):
    client = await RawClient.open(broker.url)
    try:
        frame, body = await client.request(
            constants.CREATE_TOPIC, 1, m.CreateTopic(TopicSpec(name=name, partitions=2), False)
        )
        assert frame.type != constants.ERROR, body
        wanted = TopicSpec(name=name, partitions=8)
        frame, err = await client.request(
            constants.CREATE_TOPIC, 2, m.CreateTopic(wanted, True, ["partitions"])
        )
        assert frame.type == constants.ERROR and err.code == 422, err
        assert "partitions=2 (asked 8)" in err.message
        frame, same = await client.request(
            constants.CREATE_TOPIC,
            3,
            m.CreateTopic(TopicSpec(name=name, partitions=2), True, ["partitions"]),
        )
        assert frame.type != constants.ERROR and same.spec.partitions == 2
        frame, old = await client.request(constants.CREATE_TOPIC, 4, m.CreateTopic(wanted, True))
        assert frame.type != constants.ERROR and old.spec.partitions == 2  # no given: as before
    finally:
        client.close()
