"""A failed measurement is recorded in the trace, never silently dropped.

When a measurement fails after its instrument's retries (:mod:`coscope.instruments.resilience`)
the loop records one ``failed_measurement`` row in the trace's interventions table: the
decision it answered (step, instrument, modality, location), the failure class
(``transient``, ``bad_measurement``, ``instrument_down``, ``invalid_request``; see
:mod:`coscope.errors`), the reason, and the cost charged (0: a failed measurement is not
charged). The decision stays pending, so ``coscope resume`` re-issues it. Steering ignores
the kind (it changes no setting); status and report list it.

What a failure does to the campaign is the spec's ``failures`` policy
(:class:`~coscope.config.FailurePolicySpec`), judged by :class:`FailureBook` from the trace's
records alone (so a resumed campaign judges as the uninterrupted one did): by default the
campaign stops and the decision stays pending; a tolerated failure, or the ``retire_after``-th
failure of one decision, is recorded with ``retired: true`` and the decision is never
re-issued (the agent keeps treating its location as taken).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from coscope.config import FailurePolicySpec
from coscope.errors import InstrumentError
from coscope.types import Intervention, Proposal

FAILED_MEASUREMENT = "failed_measurement"
TOLERABLE = frozenset({"transient", "bad_measurement"})
"""Failure classes a tolerant policy retires and goes on after."""


@dataclass(frozen=True)
class Verdict:
    """What one failure does: retire its decision, stop its instrument, stop the campaign."""

    retire: bool
    stop_instrument: bool
    stop_campaign: bool


class FailureBook:
    """Failures of one campaign, counted from the trace, judged by its failure policy.

    Args:
        policy: The spec's ``failures``.
        records: The trace's interventions (only ``failed_measurement`` rows count).
    """

    def __init__(self, policy: FailurePolicySpec, records: Iterable[Intervention]) -> None:
        self.policy = policy
        self.per_step: dict[int, int] = {}
        self.retired: set[int] = set()
        for item in records:
            if item.kind == FAILED_MEASUREMENT:
                self._count(item.payload)

    def _count(self, payload: dict[str, Any]) -> None:
        step = int(payload["step"])
        self.per_step[step] = self.per_step.get(step, 0) + 1
        if payload.get("retired"):
            self.retired.add(step)

    @property
    def n_failed(self) -> int:
        """Failed measurements recorded in the campaign (every run of it)."""
        return sum(self.per_step.values())

    def judge(self, proposal: Proposal, error: InstrumentError, n_measured: int) -> Verdict:
        """What the failure of ``proposal`` does, ``n_measured`` measurements being stored."""
        policy, klass = self.policy, error.failure_class
        failed = self.n_failed + 1
        tolerant = policy.max_rate > 0
        over = failed >= policy.min_failures and failed > policy.max_rate * (n_measured + failed)
        again = self.per_step.get(proposal.step, 0) + 1 >= policy.retire_after
        if tolerant and klass == "instrument_down":
            return Verdict(retire=again, stop_instrument=True, stop_campaign=over)
        tolerated = tolerant and klass in TOLERABLE and not over
        return Verdict(
            retire=tolerated or again,
            stop_instrument=False,
            stop_campaign=not tolerated,
        )

    def record(
        self, store: Any, tracker: Any, proposal: Proposal, error: InstrumentError, retire: bool
    ) -> None:
        """Record the failure (retired or not) and count it."""
        item = failure_record(proposal, error, store.counts()["decisions"], retired=retire)
        store.append_intervention(item)
        tracker.log_intervention(item)
        self._count(item.payload)


def failure_record(
    proposal: Proposal, error: InstrumentError, next_step: int, *, retired: bool = False
) -> Intervention:
    """The trace row of ``proposal``'s failed measurement, recorded before ``next_step``;
    ``retired``: the policy retired the decision (never re-issued)."""
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
            "retired": bool(retired),
        },
        step=int(next_step),
        who="coscope",
        why=f"measurement of step {proposal.step} failed ({error.failure_class})"
        + ("; the decision is retired" if retired else ""),
        t=time.time(),
    )
