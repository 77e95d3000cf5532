"""The gateway's settings (``tidings gateway --help`` sets them from the command line)."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    cors_origins: list[str] = field(default_factory=list)
    title: str = "tidings gateway"

    def validate(self) -> GatewayConfig:
        for name in ("timeout", "read_timeout", "refresh", "breaker_open_for"):
            if not getattr(self, name) > 0:
                raise BadRequest(f"gateway {name} must be > 0 seconds")
        if self.retries < 0 or self.max_body < 1:
            raise BadRequest("gateway retries must be >= 0 and max_body >= 1 byte")
        if self.route_concurrency < 1 or self.route_queue < 0:
            raise BadRequest("gateway route_concurrency must be >= 1 and route_queue >= 0")
        if self.rate is not None and self.rate <= 0:
            raise BadRequest("gateway rate must be > 0 requests per second (or unset)")
        return self
