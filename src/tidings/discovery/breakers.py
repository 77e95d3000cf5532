"""Per-instance circuit breakers for the balancers, from the resilience pipeline.

:class:`InstanceBreakers` gives a balancer one :class:`tidings.resilience.CircuitBreaker`
circuit per instance key: an open circuit takes its instance out of the choice (the balancer
still has the others), a half-open one is offered for its probe calls, and every call's
outcome and duration are recorded in the instance's circuit::

    balancer = PeakEwma(breakers=InstanceBreakers(CircuitBreaker(minimum_calls=10)))
"""

from __future__ import annotations

import time

from ..resilience.breaker import CLOSED, HALF_OPEN, CircuitBreaker


class InstanceBreakers:
    def __init__(self, breaker: CircuitBreaker | None = None) -> None:
        self.breaker = breaker or CircuitBreaker()
        self.breaker.bind("discovery", None, time.monotonic)

    def state(self, key: str) -> str:
        return self.breaker.circuit(key).state

    def allows(self, key: str) -> bool:
        circuit = self.breaker.circuit(key)
        state = circuit.state
        if state == CLOSED:
            return True
        return state == HALF_OPEN and circuit.probes_admitted < self.breaker.half_open_probes

    def admit(self, key: str) -> None:
        circuit = self.breaker.circuit(key)
        if circuit.state == HALF_OPEN:
            circuit.acquire()

    def record(self, key: str, seconds: float, ok: bool) -> None:
        circuit = self.breaker.circuit(key)
        circuit.record(circuit.generation, seconds, not ok)
