"""``tidings gateway``: REST in front of the services on the bus (docs/gateway.md)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer

from ..errors import BadRequest
from .output import UrlOpt, fail

HELP = """Serve HTTP routes in front of tidings services: the routes the running services
declare (@svc.reply(..., http="POST /v1/quotes"), @svc.on(..., http=...)), learned live from
the registry, plus static ones from a TOML file.

Example:

\b
    tidings gateway --url tidings://127.0.0.1:7420 --port 8080
    tidings gateway --port 8080 --routes routes.toml --rate 20 --api-key s3cret=alice
    tidings gateway --port 8080 --split /quotes=v1:90,v2:10 --jwt-key "$KEY"
    tidings gateway --port 8080 --split /v1/quotes=stable:95,canary:5
    tidings gateway --port 8080 --jwt-public-keys jwks.json --jwt-issuer https://id.example
"""


def gateway(
    url: UrlOpt = None,
    broker: Annotated[
        str | None, typer.Option("--broker", help="The broker URL (same as --url).")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: a free one).")] = 8080,
    routes: Annotated[
        str | None, typer.Option("--routes", help="Static routes (TOML, docs/gateway.md).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a reply (504).")] = 10.0,
    retries: Annotated[int, typer.Option(help="Extra tries for idempotent routes.")] = 1,
    max_body: Annotated[int, typer.Option(help="Largest request body, bytes (413).")] = 1 << 20,
    read_timeout: Annotated[
        float, typer.Option(help="Seconds to receive a request body (408).")
    ] = 10.0,
    refresh: Annotated[float, typer.Option(help="Seconds between registry reads.")] = 2.0,
    breaker_min_calls: Annotated[
        int, typer.Option(help="Calls in the window before a breaker may open.")
    ] = 5,
    breaker_open_for: Annotated[
        float, typer.Option(help="Seconds an upstream's open circuit stays open.")
    ] = 5.0,
    concurrency: Annotated[int, typer.Option(help="Requests in flight per route.")] = 64,
    rate: Annotated[
        float | None, typer.Option(help="Requests/s per client (API key or IP); 429 over it.")
    ] = None,
    burst: Annotated[float | None, typer.Option(help="Bucket size of --rate.")] = None,
    api_key: Annotated[
        list[str] | None,
        typer.Option("--api-key", help="KEY=PRINCIPAL; repeat; with any, requests need a key."),
    ] = None,
    jwt_key: Annotated[
        str | None,
        typer.Option("--jwt-key", envvar="TIDINGS_GATEWAY_JWT_KEY", help="Shared HS256 key."),
    ] = None,
    jwt_public_keys: Annotated[
        str | None,
        typer.Option(
            "--jwt-public-keys",
            envvar="TIDINGS_GATEWAY_JWT_PUBLIC_KEYS",
            help="JWKS or PEM file: RS256/ES256/... bearer JWTs (reread when it changes).",
        ),
    ] = None,
    jwt_issuer: Annotated[str | None, typer.Option("--jwt-issuer", help="Required iss.")] = None,
    jwt_audience: Annotated[
        str | None, typer.Option("--jwt-audience", help="Required aud.")
    ] = None,
    split: Annotated[
        list[str] | None,
        typer.Option(
            "--split",
            help="PATH=v1:W,v2:W (versions) or PATH=GROUP:W,... (instance groups); repeat.",
        ),
    ] = None,
    idempotency_ttl: Annotated[
        float,
        typer.Option(help="Seconds a stored Idempotency-Key response is kept (all gateways)."),
    ] = 24 * 3600.0,
    cors_origin: Annotated[
        list[str] | None, typer.Option("--cors-origin", help="Allowed CORS origin; repeat.")
    ] = None,
) -> None:
    from ..gateway import GatewayConfig, serve
    from ..gateway.config import parse_split

    keys: dict[str, str] = {}
    for item in api_key or []:
        key, sep, principal = item.partition("=")
        if not sep or not key or not principal:
            raise fail(f"--api-key expects KEY=PRINCIPAL, got {item!r}")
        keys[key] = principal
    try:
        parsed = [parse_split(item) for item in split or []]
        splits = {path: weights for path, weights, kind in parsed if kind == "version"}
        group_splits = {path: weights for path, weights, kind in parsed if kind == "group"}
        config = GatewayConfig(
            url=broker or url,
            routes_file=routes,
            timeout=timeout,
            retries=retries,
            max_body=max_body,
            read_timeout=read_timeout,
            refresh=refresh,
            breaker_minimum_calls=breaker_min_calls,
            breaker_open_for=breaker_open_for,
            route_concurrency=concurrency,
            rate=rate,
            burst=burst,
            api_keys=keys,
            jwt_key=jwt_key,
            jwt_public_keys=jwt_public_keys,
            jwt_issuer=jwt_issuer,
            jwt_audience=jwt_audience,
            splits=splits,
            group_splits=group_splits,
            idempotency_ttl=idempotency_ttl,
            cors_origins=list(cors_origin or []),
        ).validate()
    except BadRequest as exc:
        raise fail(exc.message, exc.exit_code) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(serve(config, host, port))
    except BadRequest as exc:
        raise fail(exc.message, exc.exit_code) from None
    except KeyboardInterrupt:
        pass


def register(app: typer.Typer) -> None:
    app.command("gateway", help=HELP)(gateway)
