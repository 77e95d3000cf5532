"""Named pipelines, configurable from code, from a dict or from TOML.

    policies.configure({"pricing": {"timeout": 1.0, "retry": {"max_attempts": 3}}})
    await policies.get("pricing").run(fetch_price, sku)

Callers that name a policy (``svc.request(..., policy="pricing")``) look it up at each call,
so a reconfigured policy takes effect at once (with fresh breaker and budget state). Keys of a
policy table: ``timeout``, ``total_timeout`` (seconds) and the tables ``retry`` (``backoff``
and ``budget`` sub-tables; ``budget = false`` for none; ``retry_on``: error class names),
``breaker``, ``bulkhead``, ``rate_limit``, ``hedge``, each with the fields of its strategy.
"""

from __future__ import annotations

import builtins
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import errors
from .backoff import Backoff
from .breaker import CircuitBreaker
from .budget import RetryBudget
from .bulkhead import Bulkhead
from .events import Observer
from .hedging import Hedge
from .pipeline import Pipeline
from .ratelimit import RateLimiter
from .retry import Retry

_TABLES: dict[str, type] = {
    "breaker": CircuitBreaker,
    "bulkhead": Bulkhead,
    "rate_limit": RateLimiter,
    "hedge": Hedge,
}
_KEYS = {"timeout", "total_timeout", "retry", *_TABLES}


def _error_class(name: str) -> type[BaseException]:
    cls = getattr(errors, name, None) or getattr(builtins, name, None)
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        raise errors.BadRequest(
            f"retry_on: {name!r} is not an error class of tidings.errors or a builtin exception"
        )
    return cls


def _build(kind: type, name: str, options: Any) -> Any:
    if not isinstance(options, Mapping):
        raise errors.BadRequest(f"policy {name!r}: {kind.__name__} settings must be a table")
    try:
        return kind(**options)
    except TypeError as exc:
        raise errors.BadRequest(f"policy {name!r}: {kind.__name__}: {exc}") from exc


def pipeline_from_config(
    name: str, config: Mapping[str, Any], observer: Observer | None = None
) -> Pipeline:
    """Build the pipeline ``name`` from one policy table (see the module)."""
    unknown = set(config) - _KEYS
    if unknown:
        raise errors.BadRequest(
            f"policy {name!r}: unknown setting(s) {sorted(unknown)}; use {sorted(_KEYS)}"
        )
    options: dict[str, Any] = {k: config[k] for k in ("timeout", "total_timeout") if k in config}
    for key, kind in _TABLES.items():
        if key in config:
            options[key] = _build(kind, name, config[key])
    if "retry" in config:
        retry = dict(config["retry"])
        if "backoff" in retry:
            retry["backoff"] = _build(Backoff, name, retry["backoff"])
        if "budget" in retry:
            budget = retry["budget"]
            retry["budget"] = None if budget is False else _build(RetryBudget, name, budget)
        if "retry_on" in retry:
            retry["retry_on"] = tuple(_error_class(n) for n in retry["retry_on"])
        options["retry"] = _build(Retry, name, retry)
    return Pipeline(name, observer=observer, **options)


class PolicyRegistry:
    """Pipelines by name."""

    def __init__(self) -> None:
        self._pipelines: dict[str, Pipeline] = {}
        self.observer: Observer | None = None

    def add(self, pipeline: Pipeline) -> Pipeline:
        self._pipelines[pipeline.name] = pipeline
        return pipeline

    def get(self, name: str) -> Pipeline:
        try:
            return self._pipelines[name]
        except KeyError:
            raise errors.NotFound(
                f"no resilience policy named {name!r}: add it with policies.add(Pipeline("
                f"{name!r}, ...)) or policies.configure(...); known: {sorted(self._pipelines)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._pipelines

    def names(self) -> list[str]:
        return sorted(self._pipelines)

    def resolve(self, policy: Pipeline | str | None) -> Pipeline | None:
        """A pipeline, a pipeline name, or None (no policy)."""
        if policy is None or isinstance(policy, Pipeline):
            return policy
        return self.get(policy)

    def configure(self, config: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """(Re)define the pipelines of ``{name: policy table}``; returns their names."""
        built = [pipeline_from_config(n, c, self.observer) for n, c in config.items()]
        for pipeline in built:  # all or nothing: a bad table leaves every policy as it was
            self.add(pipeline)
        return [p.name for p in built]

    def load_toml(self, source: str | Path) -> list[str]:
        """Configure from TOML text or a ``.toml`` file: one ``[name]`` table per policy
        (or under a top-level ``[policies]`` table)."""
        text = Path(source).read_text() if isinstance(source, Path) else source
        data = tomllib.loads(text)
        return self.configure(data.get("policies", data))


policies = PolicyRegistry()
"""The default registry: the one ``policy="name"`` strings are looked up in."""
