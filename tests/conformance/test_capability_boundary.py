"""Conformance: what a transport cannot do is refused by the transport itself when a topic or
group is declared, whoever declares it: the service framework's `svc.topic(...)` and callers
of the transport API, not only `client.create_topic`. Before, `svc.topic("orders",
replicas=3)` started on memory:// (Service.start reaches the transport directly) while
`client.create_topic(..., replicas=3)` raised Unsupported; the checks were written twice
(client and nats://)."""

from __future__ import annotations

import pytest

import tidings
from tidings.errors import BadRequest, Unsupported
from tidings.model import GroupSpec, TopicSpec
from tidings.transports import base as caps


async def test_a_service_topic_the_transport_cannot_make_is_refused(url: str, topic: str):
    client = tidings.AsyncClient(url)
    await client.connect()
    has_replicas = caps.CAP_REPLICAS in client.transport.capabilities
    await client.close()
    svc = tidings.Service("capability-check", url=url)
    svc.topic(topic, replicas=3)

    @svc.on(topic)
    async def handle(payload: dict) -> None: ...

    if has_replicas:  # nats:// can replicate, but the test's single server is no cluster
        refused = pytest.raises(BadRequest, match="replicas > 1 need a JetStream cluster")
    else:
        refused = pytest.raises(
            Unsupported, match=rf"topic '{topic}' with replicas > 1 is not supported"
        )
    with refused:
        await svc.start()
    await svc.stop()


async def test_the_transport_refuses_declarations_it_cannot_serve(
    client: tidings.AsyncClient, topic: str
):
    transport = client.transport
    await client.create_topic(topic)
    if caps.CAP_REPLICAS not in transport.capabilities:
        with pytest.raises(Unsupported, match="replicas > 1"):
            await transport.create_topic(TopicSpec(name=topic + ".r", replicas=3))
    if caps.CAP_KEY_ORDERED not in transport.capabilities:
        with pytest.raises(Unsupported, match=r"group 'g' with key_ordered=True"):
            await transport.subscribe(GroupSpec(topic=topic, name="g", key_ordered=True))
    with pytest.raises(Unsupported):  # through the client: the same check, the same words
        if caps.CAP_KEY_ORDERED not in transport.capabilities:
            await client.subscribe(topic, "g", key_ordered=True)
        else:
            await client.create_topic(topic + ".r2", replicas=3)
