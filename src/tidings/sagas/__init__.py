"""Sagas: business transactions across services, with compensations (docs/sagas.md).

:class:`Saga` declares the steps, :class:`Orchestrator` runs instances inside a service with
an outbox (state in the user's database, :mod:`.store`), :class:`Participant` makes service
handlers answer saga commands and compensations. :mod:`.machine` is the state machine and
:mod:`.protocol` what goes over the wire.
"""

from ..errors import SagaConflict, SagaNotFound, StepFailed
from .definition import Saga, Step
from .orchestrator import Orchestrator
from .participant import Participant
from .store import SagaRecord, SagaStore

__all__ = [
    "Orchestrator",
    "Participant",
    "Saga",
    "SagaConflict",
    "SagaNotFound",
    "SagaRecord",
    "SagaStore",
    "Step",
    "StepFailed",
]
