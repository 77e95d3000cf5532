"""Per-route metrics on ``/metrics`` (Prometheus text) when prometheus-client is installed
(the ``http`` extra): requests by route, method and status, and latency histograms."""

from __future__ import annotations

try:
    import prometheus_client as prom
except ImportError:  # pragma: no cover - optional
    prom = None  # type: ignore[assignment]  # the extra is absent: checked at each use


class RouteMetrics:
    def __init__(self) -> None:
        self.enabled = prom is not None
        if prom is None:
            return
        self.registry = prom.CollectorRegistry()
        self.requests = prom.Counter(
            "tidings_gateway_requests",
            "HTTP requests by route, method and status code",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = prom.Histogram(
            "tidings_gateway_request_seconds",
            "Time from request to response, by route",
            ["route"],
            registry=self.registry,
        )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        if not self.enabled:
            return
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        if prom is None:
            return b"# prometheus-client is not installed: pip install 'tidings[http]'\n", (
                "text/plain"
            )
        return prom.generate_latest(self.registry), prom.CONTENT_TYPE_LATEST
