"""The gateway's settings (``tidings gateway --help`` sets them from the command line)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..client.registry.subjects import instance_group
from ..errors import BadRequest


@dataclass
class GatewayConfig:
    url: str | None = None  # the broker (default $TIDINGS_URL)
    routes_file: str | None = None  # static routes (TOML), besides the registry's
    timeout: float = 10.0  # seconds a request route waits for its reply (then 504)
    retries: int = 1  # extra tries of idempotent routes (split the timeout between them)
    max_body: int = 1 << 20  # bytes (then 413)
    read_timeout: float = 10.0  # seconds to receive a request body (then 408)
    refresh: float = 2.0  # seconds between registry reads (live routes)
    breaker_failure_rate: float = 0.5
    breaker_minimum_calls: int = 5
    breaker_open_for: float = 5.0  # seconds a tripped upstream is not called
    route_concurrency: int = 64  # bulkhead per route: requests in flight ...
    route_queue: int = 64  # ... and waiting for a slot (then 503)
    rate: float | None = None  # requests/s per client (API key, else IP); None: no limit
    burst: float | None = None
    api_keys: dict[str, str] = field(default_factory=dict)  # key -> principal; empty: open
    jwt_key: str | None = None  # shared key verifying bearer JWTs (HS256/384/512)
    jwt_public_keys: str | None = None  # a JWKS or PEM file: RS256/ES256/... JWTs (keys.py)
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    idempotency_ttl: float = 24 * 3600.0  # seconds a stored Idempotency-Key response is kept
    cors_origins: list[str] = field(default_factory=list)
    # traffic splitting: an unversioned path -> {major: weight}, e.g. {"/quotes": {"1": 9, "2": 1}}
    splits: dict[str, dict[str, float]] = field(default_factory=dict)
    # between instance groups: a path -> {group: weight}, e.g. {"/v1/quotes": {"stable": 9,
    # "canary": 1}}; the request goes to the route's group topic (services' instance_group=)
    group_splits: dict[str, dict[str, float]] = field(default_factory=dict)
    title: str = "tidings gateway"

    def validate(self) -> GatewayConfig:
        for name in ("timeout", "read_timeout", "refresh", "breaker_open_for", "idempotency_ttl"):
            if not getattr(self, name) > 0:
                raise BadRequest(f"gateway {name} must be > 0 seconds")
        if self.retries < 0 or self.max_body < 1:
            raise BadRequest("gateway retries must be >= 0 and max_body >= 1 byte")
        if self.route_concurrency < 1 or self.route_queue < 0:
            raise BadRequest("gateway route_concurrency must be >= 1 and route_queue >= 0")
        if self.rate is not None and self.rate <= 0:
            raise BadRequest("gateway rate must be > 0 requests per second (or unset)")
        for path, weights in self.splits.items():
            if not path.startswith("/") or not weights:
                raise BadRequest(f"a split needs a path starting with / and weights: {path!r}")
            if any(not str(m).isdigit() or w < 0 for m, w in weights.items()) or not any(
                w > 0 for w in weights.values()
            ):
                raise BadRequest(
                    f"split {path}: weights are majors to numbers >= 0, one at least > 0"
                )
        for path, weights in self.group_splits.items():
            if not path.startswith("/") or not weights:
                raise BadRequest(f"a split needs a path starting with / and weights: {path!r}")
            for group in weights:
                instance_group(group)
            if any(w < 0 for w in weights.values()) or not any(w > 0 for w in weights.values()):
                raise BadRequest(f"split {path}: weights are numbers >= 0, one at least > 0")
        return self


_MAJOR = re.compile(r"^v(\d+)$")


def parse_split(text: str) -> tuple[str, dict[str, float], str]:
    """``/quotes=v1:90,v2:10`` -> ("/quotes", {"1": 90.0, "2": 10.0}, "version");
    ``/v1/quotes=stable:90,canary:10`` -> ("/v1/quotes", {"stable": 90.0, ...}, "group")."""
    path, sep, spec = text.partition("=")
    weights: dict[str, float] = {}
    try:
        for part in spec.split(","):
            name, _, weight = part.strip().partition(":")
            weights[name.strip()] = float(weight)
    except ValueError:
        weights = {}
    majors = {n: _MAJOR.match(n) for n in weights}
    if not sep or not weights or (any(majors.values()) and not all(majors.values())):
        raise BadRequest(
            "--split expects PATH=v1:WEIGHT,v2:WEIGHT (versions, like /quotes=v1:90,v2:10) or "
            "PATH=GROUP:WEIGHT,... (instance groups, like /v1/quotes=stable:90,canary:10), "
            f"got {text!r}"
        )
    if all(majors.values()):
        return path.strip(), {m.group(1): weights[n] for n, m in majors.items() if m}, "version"
    return path.strip(), weights, "group"
