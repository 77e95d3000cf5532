"""An idle MQTT connection's objects carry no per-instance ``__dict__`` (issue #21: memory per
idle connection; the figures are in docs/performance.md, from ``tidings bench mqtt``)."""

from __future__ import annotations

import pytest

from tidings.server.mqtt.aliases import TopicAliases
from tidings.server.mqtt.codec import PacketDecoder
from tidings.server.mqtt.listener import MqttConnection
from tidings.server.mqtt.session import Session


@pytest.mark.parametrize("cls", [MqttConnection, Session, PacketDecoder, TopicAliases])
def test_the_objects_of_a_connection_have_no_instance_dict(cls: type) -> None:
    obj = object.__new__(cls)
    assert not hasattr(obj, "__dict__")
