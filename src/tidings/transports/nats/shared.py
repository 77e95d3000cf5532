"""Shared groups on nats://: competing members on one durable consumer.

Every member pulls from the group's consumer with its own credit; JetStream spreads messages
over the members' open pull requests and redelivers a message whose lease (``ack_wait``) ran
out. Members heartbeat only so that ``group_info`` can count them.
"""

from __future__ import annotations

from .membership import Membership
from .naming import consumer_name, stream_name
from .subscription import NatsSubscription


class SharedSubscription(NatsSubscription):
    async def _start(self) -> None:
        spec = self.spec
        self.membership = Membership(
            self._nc,
            self._t.state,
            spec.topic,
            spec.name,
            spec.session_timeout,
            on_reset=self.flush,
        )
        await self.membership.start()
        puller = self._new_puller(stream_name(spec.topic), consumer_name(spec.name), self.prefetch)
        self._pullers[None] = puller
        await puller.start()
