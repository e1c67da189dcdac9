"""What coscope adds to each Bluesky event: the decision and what telling it gave.

:class:`StepRecord` is an ophyd device of soft signals (no hardware, no PVs). The plan sets
them after ``Campaign.tell`` and reads them into the measurement's event, so an event says
which coscope step it is and what the campaign made of it. With the device named
``coscope`` the event's data keys are ``coscope_step``, ``coscope_instrument``,
``coscope_modality``, ``coscope_row``, ``coscope_col``, ``coscope_cost`` (charged for this
measurement), ``coscope_cost_spent``, ``coscope_reward`` (NaN for another modality than the
target) and ``coscope_best_so_far``.
"""

from __future__ import annotations

from ophyd import Component as Cpt
from ophyd import Device, Signal

from coscope.types import Proposal


class StepRecord(Device):
    """The coscope fields of one measurement's event (see the module docstring)."""

    step = Cpt(Signal, value=-1, kind="hinted")
    instrument = Cpt(Signal, value="")
    modality = Cpt(Signal, value="")
    row = Cpt(Signal, value=-1)
    col = Cpt(Signal, value=-1)
    cost = Cpt(Signal, value=0.0)
    cost_spent = Cpt(Signal, value=0.0)
    reward = Cpt(Signal, value=0.0)
    best_so_far = Cpt(Signal, value=0.0)

    def show(self, proposal: Proposal, cost: float, row: dict[str, float]) -> None:
        """Hold ``proposal``, the ``cost`` told and its history row (``Campaign.tell``'s
        return) for the next read."""
        self.step.put(int(proposal.step))
        self.instrument.put(proposal.instrument)
        self.modality.put(proposal.modality)
        self.row.put(int(proposal.location.row))
        self.col.put(int(proposal.location.col))
        self.cost.put(float(cost))
        self.cost_spent.put(float(row["cost_spent"]))
        self.reward.put(float(row["reward"]))
        self.best_so_far.put(float(row["best_so_far"]))
