"""tidings.resilience: timeouts, retries with budgets, circuit breakers, bulkheads, rate
limits, hedging and fallbacks composed in one policy pipeline, for any async callable::

    from tidings.resilience import CircuitBreaker, Pipeline, Retry

    pricing = Pipeline("pricing", timeout=1.0, retry=Retry(max_attempts=3),
                       breaker=CircuitBreaker())
    price = await pricing.run(fetch_price, sku, callee="pricing.quote")

Placement: a leaf package. It imports only :mod:`tidings.errors` and :mod:`tidings.clock`, and
it is the bottom layer of the import-linter ``layers`` contract (pyproject.toml), so every
layer may use it: the service's redelivery backoff, the client's publish retries and requests,
the tidings:// transport's reconnect loop and the framework's calls all share its
:class:`Backoff` and :class:`Pipeline`. See docs/resilience.md.
"""

from .backoff import Backoff, Delays
from .breaker import CLOSED, HALF_OPEN, ISOLATED, OPEN, Circuit, CircuitBreaker
from .budget import RetryBudget
from .bulkhead import Bulkhead
from .clocks import FakeTimer, LoopTimer, Timer
from .events import Counters, Event, LogObserver, Observer, Observers
from .fallback import Fallback
from .hedging import Hedge
from .pipeline import Pipeline
from .ratelimit import RateLimiter
from .registry import PolicyRegistry, pipeline_from_config, policies
from .retry import TRANSIENT, Retry
from .sync import SyncPipeline

__all__ = [
    "CLOSED",
    "HALF_OPEN",
    "ISOLATED",
    "OPEN",
    "TRANSIENT",
    "Backoff",
    "Bulkhead",
    "Circuit",
    "CircuitBreaker",
    "Counters",
    "Delays",
    "Event",
    "FakeTimer",
    "Fallback",
    "Hedge",
    "LogObserver",
    "LoopTimer",
    "Observer",
    "Observers",
    "Pipeline",
    "PolicyRegistry",
    "RateLimiter",
    "Retry",
    "RetryBudget",
    "SyncPipeline",
    "Timer",
    "pipeline_from_config",
    "policies",
]
