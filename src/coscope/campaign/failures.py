"""A failed measurement is recorded in the trace, never silently dropped.

When a measurement fails after its instrument's retries (:mod:`coscope.instruments.resilience`)
the loop records one ``failed_measurement`` row in the trace's interventions table: the
decision it answered (step, instrument, modality, location), the failure class
(``transient``, ``bad_measurement``, ``instrument_down``, ``invalid_request``; see
:mod:`coscope.errors`), the reason, and the cost charged (0: a failed measurement is not
charged). The decision stays pending, so ``coscope resume`` re-issues it. Steering ignores
the kind (it changes no setting); status and report list it.
"""

from __future__ import annotations

import time
from typing import Any

from coscope.errors import InstrumentError
from coscope.types import Intervention, Proposal

FAILED_MEASUREMENT = "failed_measurement"


def failure_record(proposal: Proposal, error: InstrumentError, next_step: int) -> Intervention:
    """The trace row of ``proposal``'s failed measurement, recorded before ``next_step``."""
    return Intervention(
        kind=FAILED_MEASUREMENT,
        payload={
            "step": int(proposal.step),
            "instrument": proposal.instrument,
            "modality": proposal.modality,
            "location": [int(proposal.location.row), int(proposal.location.col)],
            "failure_class": error.failure_class,
            "reason": " ".join(str(error).split())[:500],
            "cost_charged": 0.0,
        },
        step=int(next_step),
        who="coscope",
        why=f"measurement of step {proposal.step} failed ({error.failure_class})",
        t=time.time(),
    )


def record_failure(store: Any, tracker: Any, proposal: Proposal, error: InstrumentError) -> None:
    """Append the failure of ``proposal`` to the trace (and log it like an intervention)."""
    item = failure_record(proposal, error, store.counts()["decisions"])
    store.append_intervention(item)
    tracker.log_intervention(item)
