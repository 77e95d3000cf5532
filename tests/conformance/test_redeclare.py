"""Conformance: re-declaring a topic with different settings is refused (TopicConflict, as
RabbitMQ's PRECONDITION_FAILED) and changes nothing; an identical re-declaration is accepted,
and one that gives no settings accepts the topic as it is."""

from __future__ import annotations

import pytest

import tidings
from tidings.errors import AlreadyExists, TopicConflict


async def test_conflicting_redeclaration_is_refused(
    client: tidings.AsyncClient, topic: str
) -> None:
    await client.create_topic(topic, max_age=3600.0)
    with pytest.raises(TopicConflict) as caught:
        await client.create_topic(topic, partitions=8)
    text = str(caught.value)
    assert f"topic {topic!r} already exists with different settings" in text
    assert "partitions=1 (asked 8)" in text and "nothing was changed" in text
    assert isinstance(caught.value, AlreadyExists)
    with pytest.raises(TopicConflict, match="max_age"):
        await client.create_topic(topic, max_age=60.0)
    assert (await client.topic_info(topic)).spec.partitions == 1


async def test_identical_redeclaration_is_accepted(client: tidings.AsyncClient, topic: str) -> None:
    first = await client.create_topic(topic, partitions=2, max_age=3600.0)
    again = await client.create_topic(topic, partitions=2, max_age=3600.0)
    assert again.partitions == first.partitions == 2
    assert (await client.create_topic(topic)).partitions == 2
