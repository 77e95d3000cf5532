"""MQTT 5 request/response (§4.10) and the payload format indicator: passed between MQTT
clients unchanged, and answered by a tidings service (docs/mqtt.md, "Request/response")."""

from __future__ import annotations

import asyncio

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import tidings
from tidings.model import Outgoing
from tidings.transports.tidings import NativeTransport


def _props(**values: object) -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    for name, value in values.items():
        setattr(props, name, value)
    return props


def test_response_topic_correlation_data_and_payload_format_pass_between_mqtt_clients(
    broker, clients
):
    """A requester's Response Topic, Correlation Data and Payload Format Indicator reach the
    responder as sent (MQTT 5.0 §3.3.2.3.2, .5, .6), and the response comes back on it."""
    port = broker.mqtt_port
    responder = clients(port, "5.0", "responder")
    assert responder.connect() == 0
    responder.subscribe("lights/+/set", 1)
    requester = clients(port, "5.0", "requester")
    assert requester.connect() == 0
    requester.subscribe("answers/requester", 1)
    props = _props(
        ResponseTopic="answers/requester",
        CorrelationData=b"\x00\x01req-1",
        PayloadFormatIndicator=1,
        ContentType="text/plain",
    )
    requester.c.publish("lights/hall/set", b"on", qos=1, properties=props)
    request = responder.next()
    got = request.properties
    assert (got.ResponseTopic, got.CorrelationData) == ("answers/requester", b"\x00\x01req-1")
    assert (got.PayloadFormatIndicator, got.ContentType) == (1, "text/plain")
    assert not hasattr(got, "UserProperty")  # nothing of tidings' own request headers
    answer = _props(CorrelationData=got.CorrelationData)
    responder.c.publish(got.ResponseTopic, b"done", qos=1, properties=answer)
    response = requester.next()
    assert (response.topic, response.payload) == ("answers/requester", b"done")
    assert response.properties.CorrelationData == b"\x00\x01req-1"


async def test_a_tidings_service_answers_an_mqtt_request(broker, clients):
    """An MQTT client's request is a tidings request (``reply-to``, ``correlation-id``): a
    ``@svc.reply`` handler answers it, and the reply reaches the client on its full response
    topic with its correlation data."""
    svc = tidings.Service("pricing", url=broker.url)

    @svc.reply("quotes")
    async def quote(query: dict) -> dict:
        return {"cents": 1200 * query["qty"]}

    port = broker.mqtt_port
    requester = clients(port, "5.0", "kiosk-7")
    assert await asyncio.to_thread(requester.connect) == 0
    await asyncio.to_thread(requester.subscribe, "kiosks/7/quotes", 1)
    async with svc.running():
        props = _props(
            ResponseTopic="kiosks/7/quotes",
            CorrelationData=b"q-42",
            ContentType="application/json",
        )
        requester.c.publish("quotes", b'{"qty": 2}', qos=1, properties=props)
        reply = await asyncio.to_thread(requester.next)
    assert (reply.topic, reply.payload) == ("kiosks/7/quotes", b'{"cents":2400}')
    assert reply.properties.CorrelationData == b"q-42"


async def test_a_tidings_request_shows_its_reply_to_and_correlation_id_to_mqtt(broker, clients):
    """A tidings client's request with an ordinary reply topic reaches an MQTT subscriber with
    that topic as Response Topic and its correlation id as Correlation Data."""
    sub = clients(broker.mqtt_port, "5.0", "mqtt-responder")
    assert await asyncio.to_thread(sub.connect) == 0
    await asyncio.to_thread(sub.subscribe, "jobs/#", 1)
    t = NativeTransport(broker.url, timeout=10.0)
    await t.connect()
    try:
        headers = {"reply-to": "done", "correlation-id": "c-9"}
        await t.publish("jobs", [Outgoing(b"work", key="a", headers=headers)])
    finally:
        await t.close()
    got = await asyncio.to_thread(sub.next)
    assert (got.topic, got.properties.ResponseTopic) == ("jobs/a", "done")
    assert got.properties.CorrelationData == b"c-9"


async def test_an_mqtt_client_answers_a_tidings_request(broker, clients):
    """``client.request`` from tidings to an MQTT responder: the request shows the broker's
    reply topic as Response Topic and the correlation id as Correlation Data; the client it
    was delivered to may publish one reply there, which the requester receives."""
    responder = clients(broker.mqtt_port, "5.0", "mqtt-pricing")
    assert await asyncio.to_thread(responder.connect) == 0
    await asyncio.to_thread(responder.subscribe, "prices/#", 1)
    async with tidings.connect(broker.url) as client:
        asking = asyncio.create_task(client.request("prices", b"2 widgets", key="eu", timeout=10))
        request = await asyncio.to_thread(responder.next)
        response_topic = request.properties.ResponseTopic
        assert response_topic.startswith("_reply.")
        answer = _props(CorrelationData=request.properties.CorrelationData)
        info = responder.c.publish(response_topic, b"42.50", qos=1, properties=answer)
        await asyncio.to_thread(info.wait_for_publish, 10)
        reply = await asyncio.wait_for(asking, 20)
        assert reply.body == b"42.50"
    # one reply per request: a second one is refused (v5: PUBACK 0x90, as for any client)
    refused = f"MQTT topic {response_topic!r}: reply topics and"
    assert refused not in broker.log()
    again = responder.c.publish(response_topic, b"forged", qos=1, properties=answer)
    await asyncio.to_thread(again.wait_for_publish, 10)
    for _ in range(100):
        if refused in broker.log():
            break
        await asyncio.sleep(0.1)
    assert refused in broker.log()
