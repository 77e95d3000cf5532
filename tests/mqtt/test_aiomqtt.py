"""aiomqtt (a third-party asyncio MQTT client) against `--mqtt` and the WebSocket path."""

from __future__ import annotations

import asyncio

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from tests.helpers.broker_process import BrokerProcess

from .conftest import mqtt_port
from .test_listeners import WS_LISTENING, logged_port

PROTOCOLS = {"3.1.1": aiomqtt.ProtocolVersion.V311, "5.0": aiomqtt.ProtocolVersion.V5}


async def next_message(client: aiomqtt.Client, wait: float = 10) -> aiomqtt.Message:
    async with asyncio.timeout(wait):
        async for message in client.messages:
            return message
    raise AssertionError("the message stream ended")


@pytest.mark.parametrize("version", sorted(PROTOCOLS))
async def test_aiomqtt_publishes_and_subscribes_with_wildcards(broker, version):
    protocol = PROTOCOLS[version]
    port = broker.mqtt_port
    async with (
        aiomqtt.Client("127.0.0.1", port, identifier="aio-sub", protocol=protocol) as sub,
        aiomqtt.Client("127.0.0.1", port, identifier="aio-pub", protocol=protocol) as pub,
    ):
        await sub.subscribe("plant/+/pressure", qos=1)
        await pub.publish("plant/pump1/flow", b"ignored", qos=1)
        await pub.publish("plant/pump1/pressure", b"2.1", qos=1)
        await pub.publish("plant/pump2/pressure", b"1.9", qos=0)
        first, second = await next_message(sub), await next_message(sub)
        assert (str(first.topic), first.payload, first.qos) == ("plant/pump1/pressure", b"2.1", 1)
        assert (str(second.topic), second.payload, second.qos) == (
            "plant/pump2/pressure",
            b"1.9",
            0,
        )
        assert first.topic.matches("plant/+/pressure")


async def test_aiomqtt_v5_properties_survive_the_broker(broker):
    port = broker.mqtt_port
    v5 = aiomqtt.ProtocolVersion.V5
    async with (
        aiomqtt.Client("127.0.0.1", port, identifier="aio-sub5", protocol=v5) as sub,
        aiomqtt.Client("127.0.0.1", port, identifier="aio-pub5", protocol=v5) as pub,
    ):
        await sub.subscribe("orders/#", qos=1)
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("tenant", "t7")]
        props.ContentType = "application/json"
        await pub.publish("orders/eu/9", b'{"n": 9}', qos=1, properties=props)
        message = await next_message(sub)
        assert message.payload == b'{"n": 9}'
        assert message.properties is not None
        assert dict(message.properties.UserProperty) == {"tenant": "t7"}
        assert message.properties.ContentType == "application/json"


async def test_aiomqtt_over_websocket(tmp_path):
    args = ["--mqtt", "127.0.0.1:0", "--http", "127.0.0.1:0"]
    with BrokerProcess(tmp_path / "data", memory=True, args=args) as broker:
        ws_port, tcp_port = logged_port(broker, WS_LISTENING), mqtt_port(broker)
        ws = aiomqtt.Client("127.0.0.1", ws_port, identifier="aio-ws", transport="websockets",
                            websocket_path="/mqtt")  # fmt: skip
        async with ws, aiomqtt.Client("127.0.0.1", tcp_port, identifier="aio-tcp") as tcp:
            await ws.subscribe("plant/#", qos=1)
            await tcp.publish("plant/valve", b"closed", qos=1)
            message = await next_message(ws)
            assert (str(message.topic), message.payload) == ("plant/valve", b"closed")
