"""The gateway: HTTP in, the bus behind. Each request is matched to a route, its body read
within limits and validated, then published (commands: 202 at once) or sent as a request
whose reply, on this instance's private reply topic, becomes the response.

Nothing is published before the whole request is read and valid: bad input gets a clean 4xx
(400 malformed JSON, 404 unknown route or version, 405, 408 slow body, 413, 415, 422).
Upstream trouble is 503 (breaker open, bulkhead full, no instance: with ``Retry-After``) or
504 (no reply within the route's timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route as HttpRoute

from .. import headers as h
from ..client import AsyncClient
from ..client.registry import Registry
from ..client.registry.subjects import group_topic
from ..errors import (
    BadRequest,
    BulkheadFull,
    CircuitOpen,
    ConnectionLost,
    RemoteError,
    TidingsError,
    Timeout,
)
from ..ids import default_snowflake
from ..resilience import Bulkhead, CircuitBreaker, Pipeline, Retry
from . import validation
from .config import GatewayConfig
from .keys import KeySet, PublicKeys, RemoteKeys
from .limits import ClientLimits
from .metrics import RouteMetrics
from .openapi import docs_page, openapi
from .responses import InProgress, KeyReused, SharedResponses, Stored
from .routes import Route, RouteTable, match_path, static_routes
from .tokens import InvalidToken, kid_of, verify

log = logging.getLogger("tidings.gateway")
access = logging.getLogger("tidings.gateway.access")

PRINCIPAL_HEADER = "tidings-principal"  # the verified caller, for the services
_KEY = re.compile(r"^[A-Za-z0-9._:-]{1,200}$")
RESERVED = ("/livez", "/readyz", "/metrics", "/openapi.json", "/docs")


class HttpError(Exception):
    def __init__(
        self, status: int, message: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": self.message, "status": self.status, **self.extra},
            self.status,
            headers=self.headers,
        )


def _stored(response: Response, fingerprint: str) -> Stored:
    headers = {k: v for k, v in response.headers.items() if k != "content-length"}
    return Stored(response.status_code, bytes(response.body), headers, fingerprint)


def _upstream_failure(exc: BaseException) -> bool:
    """What counts against an upstream's breaker: no answer, not a handler's own error."""
    return isinstance(exc, Timeout | ConnectionLost)


class Gateway:
    """``Gateway(GatewayConfig(url=...)).app`` is the ASGI app; :meth:`lifespan` connects."""

    def __init__(self, config: GatewayConfig | None = None) -> None:
        self.config = (config or GatewayConfig()).validate()
        static = static_routes(self.config.routes_file) if self.config.routes_file else []
        self.table = RouteTable(static)
        self.client: AsyncClient | None = None
        self.ready = False
        self.metrics = RouteMetrics()
        self.responses = SharedResponses(self.config.idempotency_ttl)
        self.limits = (
            ClientLimits(self.config.rate, self.config.burst) if self.config.rate else None
        )
        keys_file = self.config.jwt_public_keys
        self.public_keys: KeySet | None = None
        if keys_file and keys_file.startswith(("https://", "http://")):
            self.public_keys = RemoteKeys(keys_file)
        elif keys_file:
            self.public_keys = PublicKeys(keys_file)
        self._breakers: dict[str, CircuitBreaker] = {}
        self._pipelines: dict[str, Pipeline] = {}
        self._refresher: asyncio.Task[None] | None = None
        middleware = []
        if self.config.cors_origins:
            middleware.append(
                Middleware(
                    CORSMiddleware,
                    allow_origins=self.config.cors_origins,
                    allow_methods=["*"],
                    allow_headers=["*"],
                    expose_headers=["Location", "Retry-After", "RateLimit-Remaining"],
                )
            )
        self.app = Starlette(
            routes=[
                HttpRoute("/livez", self.livez),
                HttpRoute("/readyz", self.readyz),
                HttpRoute("/metrics", self.render_metrics),
                HttpRoute("/openapi.json", self.openapi),
                HttpRoute("/docs", self.docs),
                HttpRoute(
                    "/{path:path}",
                    self.handle,
                    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                ),
            ],
            middleware=middleware,
            lifespan=self.lifespan,
        )

    # lifecycle
    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        self.client = AsyncClient(self.config.url)
        await self.client.connect()
        await self.responses.start(self.client)
        if isinstance(self.public_keys, RemoteKeys):
            try:
                await self.public_keys.fetch()
            except BadRequest as exc:  # the provider may be down: fetched again on demand
                log.warning("gateway: %s", exc.message)
        self._refresher = asyncio.create_task(self._refresh_loop())
        try:
            yield
        finally:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            await self.responses.close()
            await self.client.close()

    async def refresh(self) -> None:
        """Read the registry once and update the route table."""
        assert self.client is not None
        instances = await Registry(self.client).instances(ask=False)
        self.table.update(instances)
        self.ready = True

    async def _refresh_loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("gateway: reading the registry failed: %s", exc)
            await asyncio.sleep(self.config.refresh)

    # the gateway's own endpoints
    async def livez(self, request: Request) -> Response:
        return JSONResponse({"status": "live"})

    async def readyz(self, request: Request) -> Response:
        if self.ready and self.client is not None and self.responses.caught_up.is_set():
            return JSONResponse({"status": "ready", "routes": len(self.table.routes)})
        why = "the route table or the stored idempotent responses are not read yet"
        return JSONResponse({"status": "not ready", "why": why}, 503)

    async def render_metrics(self, request: Request) -> Response:
        body, media = self.metrics.render()
        return Response(body, media_type=media)

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi(self.table, self.config.title))

    async def docs(self, request: Request) -> Response:
        return HTMLResponse(docs_page(self.table, self.config.title))

    # routing
    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        route_name = "-"
        try:
            route, params = self._route(request)
            route_name = route.key
            response = await self._serve(request, route, params)
        except HttpError as exc:
            response = exc.response()
        except Exception:  # one request never takes the gateway down
            log.exception("gateway: %s %s failed", request.method, request.url.path)
            response = JSONResponse({"error": "internal gateway error", "status": 500}, 500)
        seconds = time.perf_counter() - started
        self.metrics.observe(route_name, request.method, response.status_code, seconds)
        access.info(
            '%s "%s %s" %d %.1fms %s',
            request.client.host if request.client else "-",
            request.method,
            request.url.path,
            response.status_code,
            seconds * 1000,
            route_name,
        )
        return response

    def _route(self, request: Request) -> tuple[Route, dict[str, str]]:
        method, path = request.method, request.url.path
        found = self.table.find(method, path)
        if found is not None:
            return found
        split = self._split(method, path)
        if split is not None:
            return split
        methods = self.table.methods_for(path)
        if methods:
            raise HttpError(
                405,
                f"{method} is not served on {path}: use {', '.join(methods)}",
                {"Allow": ", ".join(methods)},
            )
        versions = self.table.versions_for(path)
        if versions:
            raise HttpError(
                404,
                f"{path} is not served in this version: the gateway serves "
                + ", ".join(f"v{v}" for v in versions)
                + " of it",
                versions=[f"v{v}" for v in versions],
            )
        raise HttpError(404, f"no route for {method} {path}: see /openapi.json for the routes")

    def _split(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """Traffic splitting: an unversioned path goes to a major picked by weight."""
        for template, weights in self.config.splits.items():
            if match_path(template, path) is None:
                continue
            majors = [m for m, w in weights.items() if w > 0]
            major = random.choices(majors, [weights[m] for m in majors])[0]
            found = self.table.find(method, f"/v{major}{path}")
            if found is not None:
                return found
            raise HttpError(
                503,
                f"{path} splits to v{major}, which no running service serves yet",
                {"Retry-After": str(max(1, round(self.config.refresh)))},
            )
        return None

    async def _principal(self, request: Request) -> str | None:
        keys, jwt_key, public = self.config.api_keys, self.config.jwt_key, self.public_keys
        jwts = jwt_key is not None or public is not None
        if not keys and not jwts:
            return None
        key = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        bearer = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        challenge = {"WWW-Authenticate": "Bearer"}
        if key is None and bearer is not None and bearer.count(".") == 2 and jwts:
            if public is not None:
                await public.ensure(kid_of(bearer))
            try:
                claims = verify(
                    bearer,
                    jwt_key.encode() if jwt_key is not None else None,
                    public_keys=public,
                    issuer=self.config.jwt_issuer,
                    audience=self.config.jwt_audience,
                )
            except InvalidToken as exc:
                raise HttpError(401, f"bearer token refused: {exc}", challenge) from None
            return str(claims["sub"])
        key = key if key is not None else bearer
        if key is None:
            what = " or ".join(
                w for w, on in (("an API key (X-API-Key)", keys), ("a bearer JWT", jwts)) if on
            )
            raise HttpError(401, f"this gateway needs {what}", challenge)
        principal = keys.get(key)
        if principal is None:
            raise HttpError(401, "unknown API key", challenge)
        return principal

    def _client_id(self, request: Request, principal: str | None) -> str:
        if principal is not None:
            return f"key:{principal}"
        return f"ip:{request.client.host if request.client else '-'}"

    async def _serve(self, request: Request, route: Route, params: dict[str, str]) -> Response:
        principal = await self._principal(request)
        client_id = self._client_id(request, principal)
        limit_headers: dict[str, str] = {}
        if self.limits is not None:
            verdict = self.limits.check(client_id)
            limit_headers = verdict.headers
            if not verdict.allowed:
                raise HttpError(
                    429,
                    f"rate limit: {self.limits.rate:g} requests/s per client; "
                    f"retry after {verdict.headers['Retry-After']}s",
                    limit_headers,
                )
        body = await self._read_body(request)
        payload = self._payload(request, route, params, body)
        problems = validation.errors(route.schema, payload)
        if problems:
            raise HttpError(
                422, f"the request does not fit {route.key}", limit_headers, detail=problems
            )
        key = request.headers.get("idempotency-key")
        if key is not None and not _KEY.match(key):
            raise HttpError(400, "Idempotency-Key: 1 to 200 letters, digits and . _ : -")
        out_headers = self._bus_headers(request, principal)
        data = json.dumps(payload, separators=(",", ":")).encode()
        group = self._group(route, request.url.path)
        if key is None:
            response = await self._call(route, data, out_headers, None, group)
        else:
            response = await self._idempotent(route, client_id, key, data, out_headers, group)
        response.headers.update(limit_headers)
        if route.major is not None:
            response.headers["tidings-version"] = f"v{route.major}"
        if group is not None:
            response.headers["tidings-instance-group"] = group
        return response

    def _group(self, route: Route, path: str) -> str | None:
        """Traffic splitting between instance groups: the group picked by weight, if any."""
        for template, weights in self.config.group_splits.items():
            if match_path(template, path) is None and match_path(template, route.path) is None:
                continue
            groups = [g for g, w in weights.items() if w > 0]
            return random.choices(groups, [weights[g] for g in groups])[0]
        return None

    async def _read_body(self, request: Request) -> bytes:
        if request.method == "GET":
            return b""
        limit = self.config.max_body
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise HttpError(413, f"the body is {length} bytes: this gateway takes up to {limit}")
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.config.read_timeout):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise HttpError(413, f"the body is over {limit} bytes: send less")
                    chunks.append(chunk)
        except TimeoutError:
            raise HttpError(
                408, f"the request body did not arrive within {self.config.read_timeout:g}s"
            ) from None
        except ClientDisconnect:
            raise HttpError(400, "the client went away before the body was complete") from None
        body = b"".join(chunks)
        if body:
            media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if media != "application/json" and not media.endswith("+json"):
                raise HttpError(
                    415, f"send the body as application/json (got {media or 'no content type'})"
                )
        return body

    def _payload(self, request: Request, route: Route, params: dict[str, str], body: bytes) -> Any:
        payload: Any = {}
        if body:
            try:
                payload = json.loads(body)
            except ValueError as exc:
                raise HttpError(400, f"the body is not valid JSON: {exc}") from None
        fields = {k: validation.coerce(route.schema, k, v) for k, v in request.query_params.items()}
        fields.update({k: validation.coerce(route.schema, k, v) for k, v in params.items()})
        if fields:
            if not isinstance(payload, dict):
                raise HttpError(
                    422, "the body must be a JSON object: the route adds path/query fields to it"
                )
            payload = {**payload, **fields}
        return payload

    def _bus_headers(self, request: Request, principal: str | None) -> dict[str, str]:
        out = {"content-type": "application/json"}
        for name in (h.TRACEPARENT, "tracestate"):
            value = request.headers.get(name)
            if value:
                out[name] = value
        if principal is not None:
            out[PRINCIPAL_HEADER] = principal
        return out

    async def _idempotent(
        self,
        route: Route,
        client_id: str,
        key: str,
        data: bytes,
        out_headers: dict[str, str],
        group: str | None,
    ) -> Response:
        scoped = f"{client_id}/{key}"
        fingerprint = hashlib.sha256(f"{route.key}\n".encode() + data).hexdigest()
        busy_for = (route.timeout or self.config.timeout) * (1 + self.config.retries)
        try:
            claimed = await self.responses.claim(scoped, fingerprint, busy_for)
        except InProgress:
            raise HttpError(
                409, "a request with this Idempotency-Key is still in progress: retry later"
            ) from None
        except KeyReused:
            raise HttpError(
                422, "this Idempotency-Key was used for another request: use a new key"
            ) from None
        except TimeoutError:
            raise HttpError(
                503, "the stored idempotent responses are not read yet", {"Retry-After": "1"}
            ) from None
        except TidingsError as exc:
            raise HttpError(
                503, f"the Idempotency-Key could not be claimed: {exc}", {"Retry-After": "1"}
            ) from exc
        if isinstance(claimed, Stored):
            return Response(
                claimed.body,
                claimed.status,
                headers={**claimed.headers, "Idempotent-Replayed": "true"},
            )
        keep: Stored | None = None
        try:
            response = await self._call(route, data, out_headers, key, group)
            if response.status_code < 500:
                keep = _stored(response, fingerprint)
            return response
        except HttpError as exc:
            if exc.status < 500:  # the handler's 422 is an answer too: a repeat gets it again
                keep = _stored(exc.response(), fingerprint)
            raise
        finally:
            await self.responses.finish(claimed, keep)

    # the bus
    def _pipeline(self, route: Route) -> Pipeline:
        pipeline = self._pipelines.get(route.key)
        if pipeline is None:
            breaker = self._breakers.get(route.service)
            if breaker is None:
                breaker = self._breakers[route.service] = CircuitBreaker(
                    failure_rate=self.config.breaker_failure_rate,
                    minimum_calls=self.config.breaker_minimum_calls,
                    window=max(20, self.config.breaker_minimum_calls),
                    open_for=self.config.breaker_open_for,
                    failure_on=_upstream_failure,
                )
            retry = None
            if route.idempotent and self.config.retries > 0:
                retry = Retry(max_attempts=1 + self.config.retries, budget=None)
            pipeline = self._pipelines[route.key] = Pipeline(
                f"gateway {route.key}",
                retry=retry,
                breaker=breaker,
                bulkhead=Bulkhead(
                    max_concurrent=self.config.route_concurrency, max_queue=self.config.route_queue
                ),
            )
        return pipeline

    async def _call(
        self,
        route: Route,
        data: bytes,
        out_headers: dict[str, str],
        key: str | None,
        group: str | None = None,
    ) -> Response:
        assert self.client is not None
        client = self.client
        topic = route.bus_topic
        if group is not None:
            if not route.groups.get(group):
                raise HttpError(
                    503,
                    f"{route.key} splits to instance group {group!r}, which no running "
                    f"instance of {route.service!r} is in",
                    {"Retry-After": str(max(1, round(self.config.refresh)))},
                )
            topic = group_topic(topic, group)
        if route.kind == "command":
            msg_id = key or default_snowflake().next_str()
            try:
                await client.publish(topic, data, headers=out_headers, msg_id=msg_id)
            except TidingsError as exc:
                raise HttpError(503, f"the command could not be published: {exc}") from exc
            location = f"{route.path.rstrip('/')}/{msg_id}"
            body: dict[str, Any] = {"id": msg_id, "status": "accepted"}
            headers = {}
            if self.table.find("GET", location) is not None:
                body["location"] = location
                headers["Location"] = location
            return JSONResponse(body, 202, headers=headers)
        if not route.instances and not route.static:
            raise HttpError(
                503,
                f"no live instance of service {route.service!r} serves {route.key}",
                {"Retry-After": str(max(1, round(self.config.refresh)))},
            )
        timeout = route.timeout or self.config.timeout
        attempts = 1 + self.config.retries if route.idempotent else 1
        per_try = timeout / attempts

        async def once() -> Any:
            return await client.request(topic, data, timeout=per_try, headers=out_headers)

        try:
            reply = await self._pipeline(route).run(once, callee=route.service)
        except CircuitOpen as exc:
            after = max(1, round(exc.retry_after or self.config.breaker_open_for))
            raise HttpError(
                503,
                f"service {route.service!r} is failing: its circuit is open, retry in {after}s",
                {"Retry-After": str(after)},
            ) from exc
        except BulkheadFull as exc:
            raise HttpError(
                503, f"{route.key} has too many requests in flight", {"Retry-After": "1"}
            ) from exc
        except Timeout as exc:
            raise HttpError(
                504, f"service {route.service!r} did not answer {route.key} within {timeout:g}s"
            ) from exc
        except RemoteError as exc:
            status = 422 if exc.remote_type in ("ValidationError", "InvalidPayload") else 502
            raise HttpError(
                status, f"{route.service}: {exc.message}", type=exc.remote_type
            ) from exc
        except ConnectionLost as exc:
            raise HttpError(503, f"the gateway lost the bus: {exc}", {"Retry-After": "1"}) from exc
        return Response(reply.body, 200, media_type="application/json")
