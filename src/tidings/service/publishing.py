"""Publishing from a service: events, commands, requests, scatter-gather and replies.

Every outgoing message is encoded with the service's codec (pydantic models, dataclasses and
plain data; ``bytes`` go as they are), stamped with ``content-type`` and ``tidings-type``,
given a Snowflake ``msg_id`` (so a retried publish is deduplicated by the broker), and passed
through the middleware chain; ``publish_many`` sends many such messages in one round trip
(:mod:`.publish_batch`). :class:`Publishing` is mixed into :class:`tidings.Service`.
The chain is built once per middleware list, not per publish (see :mod:`.middleware`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from .. import headers as h
from ..errors import BadRequest, Closed, NotFound
from ..ids import default_snowflake
from ..model import Message, Outgoing, Receipt
from .hooks import Hooks
from .middleware import (
    BATCH_SIZE,
    PublishCall,
    PublishNext,
    call_endpoint,
    publish_chain,
    publish_hooks,
)
from .payloads import PayloadType, encode_payload
from .publish_batch import publish_batch, publish_hooked_batch
from .versions import VersionRoutes

if TYPE_CHECKING:
    from ..client import AsyncClient
    from ..ids import Snowflake
    from ..resilience import Pipeline
    from .codecs import Codec
    from .handlers import Handler
    from .middleware import Middleware

Kind = Literal["event", "command", "document", "request", "reply"]


class Publishing:
    """The sending half of a service (needs ``client``, ``codec``, ``ids``, ``middleware``)."""

    client: AsyncClient | None
    codec: Codec
    ids: Snowflake
    middleware: list[Middleware]
    _publish_chain: tuple[tuple[Middleware, ...], PublishNext] | None = None
    _publish_hooks: tuple[tuple[Middleware, ...], Hooks | None] | None = None
    _version_routes: VersionRoutes | None = None

    @property
    def _versions(self) -> VersionRoutes:
        if self._version_routes is None:
            self._version_routes = VersionRoutes()
        return self._version_routes

    async def _connect(self) -> AsyncClient:
        raise NotImplementedError

    _call_policies: dict[str, Pipeline | str] | None = None

    def calls(self, topic: str, *, policy: Pipeline | str) -> None:
        """Make ``policy`` (a resilience pipeline or a policy name) the default of this
        service's requests and scatters to ``topic``; a ``policy=`` argument overrides it."""
        if self._call_policies is None:
            self._call_policies = {}
        self._call_policies[topic] = policy

    def _policy_for(self, topic: str, policy: Pipeline | str | None) -> Pipeline | str | None:
        if policy is not None or self._call_policies is None:
            return policy
        return self._call_policies.get(topic)

    def _publish_through_chain(self, call: PublishCall, endpoint: Any) -> Awaitable[Any]:
        """The chain's awaitable for ``call`` ending at ``endpoint`` (await it)."""
        built = self._publish_chain
        middleware = tuple(self.middleware)
        if built is None or built[0] != middleware:
            built = self._publish_chain = (middleware, publish_chain(middleware, call_endpoint))
        call.endpoint = endpoint
        return built[1](call)

    def _outgoing(
        self,
        payload: Any,
        kind: str,
        key: str | None,
        headers: dict[str, str] | None,
        msg_id: str | None,
        ttl: float | None,
        delay: float | None,
    ) -> Outgoing:
        body, content_type = encode_payload(payload, self.codec)
        if headers:
            out = {h.CONTENT_TYPE: content_type, h.MESSAGE_TYPE: kind, **headers}
        else:  # no empty ** to unpack (a third of this function's cost)
            out = {h.CONTENT_TYPE: content_type, h.MESSAGE_TYPE: kind}
        return Outgoing(body, key, out, msg_id or self.ids.next_str(), ttl, delay or None)

    async def publish(
        self,
        topic: str,
        payload: Any,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        msg_id: str | None = None,
        ttl: float | None = None,
        delay: float | None = None,
        kind: Kind = "event",
    ) -> Receipt:
        """Publish an event (``kind`` to say otherwise). The payload is encoded with the
        service's codec; ``msg_id`` defaults to a Snowflake id so retries deduplicate."""
        client = self.client
        if client is None:
            client = await self._connect()
        hooks = self._hooks()
        if hooks is None:  # a middleware of the application's: the chain of coroutines
            call = PublishCall(
                topic, self._outgoing(payload, kind, key, headers, msg_id, ttl, delay), kind,
                payload,
            )  # fmt: skip
            receipt: Receipt = await self._publish_through_chain(call, self._publish_endpoint)
            return receipt
        # The built-in middleware as plain calls, no coroutine. None of their enters reads
        # the msg_id, so when the client gives ids from this service's own generator (the
        # process-wide one) it is left to the client, which gives a batch its ids in one call;
        # it is set before the batch is sent, so the leaves see it.
        body, content_type = encode_payload(payload, self.codec)
        if headers:
            out = {h.CONTENT_TYPE: content_type, h.MESSAGE_TYPE: kind, **headers}
        else:
            out = {h.CONTENT_TYPE: content_type, h.MESSAGE_TYPE: kind}
        if msg_id is None and not self._client_gives_ids(client):
            msg_id = self.ids.next_str()
        message = Outgoing(body, key, out, msg_id, ttl, delay or None)
        call = PublishCall(topic, message, kind, payload)
        tokens = hooks.enter(call) if hooks.enters else []  # no hook: nothing to run
        try:
            m = call.message
            try:
                if m.ttl is None and m.delay is None and type(m.body) is bytes:
                    receipt = await client._submit(topic, m)  # the message as it is, no copy
                else:
                    receipt = await client.publish_async(
                        topic, m.body, key=m.key, headers=m.headers, msg_id=m.msg_id,
                        ttl=m.ttl, delay=m.delay,
                    )  # fmt: skip
            except NotFound:
                receipt = await self._create_and_publish(client, call)
        except BaseException as exc:
            error = hooks.leave(call, tokens, exc)
            assert error is not None
            raise error  # noqa: B904  # exc itself, or what a leave raised on it
        error = hooks.leave(call, tokens, None)
        if error is not None:
            raise error
        return receipt

    _ids_client: tuple[AsyncClient, bool] | None = None

    def _client_gives_ids(self, client: AsyncClient) -> bool:
        """Whether ``client`` gives a message without a ``msg_id`` one from ``self.ids`` (its
        retries are on and ``self.ids`` is the process-wide generator the client uses)."""
        known = self._ids_client
        if known is None or known[0] is not client:
            gives = getattr(client, "_assigns_ids", False) and self.ids is default_snowflake()
            known = self._ids_client = (client, bool(gives))
        return known[1]

    def _hooks(self) -> Hooks | None:
        """The publish middleware as hooks (None if one of them has none), built once per
        middleware list."""
        middleware = tuple(self.middleware)
        built = self._publish_hooks
        if built is None or built[0] != middleware:
            built = self._publish_hooks = (middleware, publish_hooks(middleware))
        return built[1]

    async def _publish_endpoint(self, c: PublishCall) -> Receipt:
        client = self.client
        if client is None:
            raise Closed("the service is stopped")
        m = c.message  # concurrent publishes to one topic travel in one batch
        try:
            return await client.publish_async(
                c.topic, m.body, key=m.key, headers=m.headers, msg_id=m.msg_id, ttl=m.ttl,
                delay=m.delay,
            )  # fmt: skip
        except NotFound:
            return await self._create_and_publish(client, c)

    async def _create_and_publish(self, client: AsyncClient, c: PublishCall) -> Receipt:
        """The first message on a topic: create it, then publish."""
        await client.create_topic(c.topic, exist_ok=True)
        if c.message.msg_id is None:  # left to the client's batch, which did not go out
            c.message.msg_id = self.ids.next_str()
        return (await client.publish_many(c.topic, [c.message]))[0]

    async def publish_many(
        self,
        topic: str,
        payloads: Sequence[Any],
        *,
        keys: Sequence[str | None] | None = None,
        headers: dict[str, str] | None = None,
        kind: Kind = "event",
    ) -> list[Receipt]:
        """Publish several payloads to ``topic`` in one round trip (all or none are stored).
        Each is encoded, given its own Snowflake ``msg_id`` and passed through the publish
        middleware, as with :meth:`publish`; receipts come back in order."""
        if keys is not None and len(keys) != len(payloads):
            raise BadRequest(f"{len(keys)} keys for {len(payloads)} payloads: give one key each")
        if not payloads:
            return []
        client = await self._connect()
        ids = self.ids.next_strs(len(payloads))  # one lock and clock read for the batch
        calls = [
            PublishCall(
                topic,
                self._outgoing(
                    payload, kind, keys[i] if keys else None, headers, ids[i], None, None
                ),
                kind,
                payload,
                {BATCH_SIZE: len(payloads)},
            )
            for i, payload in enumerate(payloads)
        ]

        async def send(messages: list[Outgoing]) -> list[Receipt]:
            try:
                return await client.publish_many(topic, messages)
            except NotFound:  # the first messages on a topic: create it, then publish
                await client.create_topic(topic, exist_ok=True)
                return await client.publish_many(topic, messages)

        hooks = self._hooks()
        if hooks is None:  # a middleware of the application's: each call through the chain
            return await publish_batch(calls, self._publish_through_chain, send)
        return await publish_hooked_batch(calls, hooks, send)

    async def send(self, topic: str, payload: Any, **options: Any) -> Receipt:
        """Send a command (a one-way message to the service that owns ``topic``)."""
        return await self.publish(topic, payload, kind="command", **options)

    async def request(
        self,
        topic: str,
        payload: Any,
        *,
        returns: Any = Any,
        timeout: float = 5.0,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        policy: Pipeline | str | None = None,
        version: str | None = None,
    ) -> Any:
        """Send a request and return the reply decoded as ``returns``. Raises RequestTimeout
        and RemoteError (the responder raised). ``policy`` (default: the one set with
        :meth:`calls` for ``topic``) runs it through a resilience pipeline. ``version`` (a major
        like "2") sends it to handlers of that major version only; NoInstance when none
        runs."""
        policy = self._policy_for(topic, policy)
        client = await self._connect()
        if version is not None:
            topic = await self._versions.topic_for(client, topic, version)
        call = PublishCall(
            topic,
            self._outgoing(payload, "request", key, headers, None, None, None),
            "request",
            payload,
        )

        async def endpoint(c: PublishCall) -> Message:
            return await client.request(
                c.topic,
                c.message.body,
                timeout=timeout,
                key=c.message.key,
                headers=c.message.headers,
                policy=policy,
            )

        reply: Message = await self._publish_through_chain(call, endpoint)
        return PayloadType(returns).decode(reply, self.codec)

    async def scatter(
        self,
        topic: str,
        payload: Any,
        *,
        returns: Any = Any,
        timeout: float = 2.0,
        max_replies: int | None = None,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        policy: Pipeline | str | None = None,
    ) -> list[Any]:
        """Send one request to every responder group and collect the replies until ``timeout``
        or ``max_replies``. Failed responders are logged and left out. ``policy`` as for
        :meth:`request`."""
        policy = self._policy_for(topic, policy)
        client = await self._connect()
        call = PublishCall(
            topic,
            self._outgoing(payload, "request", key, headers, None, None, None),
            "request",
            payload,
        )

        async def endpoint(c: PublishCall) -> list[Message]:
            return await client.scatter(
                c.topic,
                c.message.body,
                timeout=timeout,
                max_replies=max_replies,
                key=c.message.key,
                headers=c.message.headers,
                policy=policy,
            )

        replies: list[Message] = await self._publish_through_chain(call, endpoint)
        decoder = PayloadType(returns)
        return [decoder.decode(m, self.codec) for m in replies]

    async def send_reply(self, handler: Handler, request: Message, result: Any) -> None:
        """Publish a responder's result to the requester (nothing if nobody asked)."""
        reply_to = request.headers.get(h.REPLY_TO)
        if not reply_to:
            return
        client = self.client
        if client is None:
            raise Closed("the service is stopped")
        body, content_type = encode_payload(result, self.codec)
        out = {h.CONTENT_TYPE: content_type}
        correlation_id = request.headers.get(h.CORRELATION_ID)
        if correlation_id is not None:  # the client sets it too; middleware sees it here
            out[h.CORRELATION_ID] = correlation_id
        call = PublishCall(reply_to, Outgoing(body, headers=out), "reply", result)

        async def endpoint(c: PublishCall) -> Receipt:
            return await client.reply(request, c.message.body, headers=c.message.headers)

        await self._publish_through_chain(call, endpoint)

    async def send_error_reply(self, request: Message, error: BaseException) -> None:
        if not request.headers.get(h.REPLY_TO) or self.client is None:
            return
        await self.client.reply_error(request, error)
