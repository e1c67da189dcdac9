"""Recording: the trace first, then the agent, the fits, the tracker and the history.

:class:`Recorder` owns what the campaign has used (measurements paid for, cost spent, the
best target value) and the per-measurement history rows; the deciding side reads its
:meth:`Recorder.budget_state`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import replace

from coscope.campaign.context import CampaignContext
from coscope.campaign.decide import BudgetState
from coscope.campaign.fits import FitBook
from coscope.campaign.reconcile import history_row
from coscope.types import Measurement, Proposal

log = logging.getLogger(__name__)


class Recorder:
    """Writes decisions and measurements of one campaign run, in the order DESIGN.md names."""

    def __init__(self, ctx: CampaignContext, fits: FitBook) -> None:
        self.ctx = ctx
        self.fits = fits
        self.history: list[dict[str, float]] = []
        self.best = -math.inf
        self.spent = 0.0
        self.n_measured = 0
        self.unlogged: set[int] = set()
        """Steps of stored measurements whose row the tracker lacks (a crash lost them); logged
        when they are handed back (:mod:`coscope.campaign.reconcile`)."""

    def budget_state(self, inflight: Sequence[Proposal] = ()) -> BudgetState:
        """Used and committed budget with ``inflight`` decisions not yet recorded."""
        cost = float(sum(p.expected_cost for p in inflight))
        return BudgetState(self.n_measured, self.spent, len(inflight), cost)

    def restore(
        self,
        measurements: list[Measurement],
        paid: set[int],
        unlogged: frozenset[int] = frozenset(),
    ) -> None:
        """Tell the agent the stored ``measurements`` (trace order); ``paid``: steps a source
        paid for, not the campaign.

        Up to the first step in ``unlogged`` they are told at once; from there on one by one,
        as they were measured (refits when due), so that the row of each unlogged step is
        computed from what the agent knew then and logged (:mod:`coscope.campaign.reconcile`).
        The fits must be restored first (:meth:`FitBook.restore`).
        """
        first = next((i for i, m in enumerate(measurements) if m.step in unlogged), None)
        head = measurements if first is None else measurements[:first]
        self.spent = float(sum(m.cost for m in head))
        self.n_measured = sum(m.step not in paid for m in head)
        observations = self.ctx.feed_agent(head)
        self.best = max((o.value for o in observations), default=-math.inf)
        self.unlogged = set(unlogged)
        if first is None:
            return
        self.fits.connect()  # as before the first decision of the run that measured them
        for measurement in measurements[first:]:
            if measurement.step in paid:  # a source's: told the agent, no row
                self.spent += measurement.cost
                self._learn(measurement)
                self.ctx.agent.ingest_measurements([measurement])
            else:
                self.measurement(measurement, replayed=True)

    def _learn(self, measurement: Measurement) -> float:
        """Its target value (NaN for another modality); updates the best so far and the
        Pareto front of a multi-objective campaign."""
        if self.ctx.front is not None:
            self.ctx.front.add([measurement])
        target = self.ctx.target
        if measurement.modality != target.modality:
            return math.nan
        reward = target.observe(measurement).value
        self.best = max(self.best, reward)
        return reward

    def rescore(self) -> None:
        """The best target value again, after the target changed (re-scalarized)."""
        target = self.ctx.target
        values = [target.observe(m).value for m in self.ctx.store.measurements()
                  if m.modality == target.modality]  # fmt: skip
        self.best = max(values, default=-math.inf)

    def decision(self, proposal: Proposal, *, replaying: bool) -> Proposal:
        """Store a decision (with its time and what it knew), log it; returns it as stored.

        Args:
            proposal: The agent's proposal.
            replaying: Stored measurements of a resume are still being handed back; a resume
                has caught up once they are all replayed.
        """
        ctx = self.ctx
        proposal = replace(proposal, t_decided=time.time(), n_known=self.n_measured)
        ctx.store.append_decision(proposal)
        # from then on every fit is new, even one that repeats an earlier model
        self.fits.resuming = self.fits.resuming and replaying
        ctx.tracker.log_decision(proposal)
        constrained = ctx.abilities.constrained
        if constrained is not None:  # p_feasible of the chosen point (constraints, failures)
            values = constrained.decision_feasibility(proposal.step)
            if values:
                ctx.tracker.log_metrics(
                    proposal.step, {f"decision.{k}": v for k, v in values.items()}
                )
        loc = proposal.location
        log.info(
            "step %d: %s -> %s at (%d, %d) on %s, expected cost %.4g",
            proposal.step,
            proposal.policy,
            proposal.modality,
            loc.row,
            loc.col,
            proposal.instrument,
            proposal.expected_cost,
        )
        return proposal

    def measurement(self, measurement: Measurement, *, replayed: bool = False) -> None:
        """Learn from a measurement; store it first (a replayed one is stored already).

        A replayed one was logged by the run that measured it, unless a crash lost its row
        (:attr:`unlogged`): then it is logged now.
        """
        ctx = self.ctx
        if not replayed:
            ctx.store.append_measurement(measurement)  # durable before anyone learns of it
        self.spent += measurement.cost
        self.n_measured += 1
        reward = self._learn(measurement)
        ctx.agent.ingest_measurements([measurement])
        self.fits.refit_if_due()  # on the executor, before anything else asks the model
        lost = replayed and measurement.step in self.unlogged
        if replayed and not lost:
            self.fits.take_agent_fits()
            return
        row = history_row(
            measurement.step,
            reward,
            self.best,
            self.spent,
            self.n_measured,
            {
                **ctx.prediction_metrics(self.n_measured),
                **ctx.front_metrics(),
                **ctx.hypothesis_metrics(),
            },
        )
        self.fits.take_agent_fits()  # a report may have adopted a fit the agent made itself
        ctx.tracker.log_step(measurement.step, row)
        log.info(
            "step %d measured (%s): reward %.4g, best %.4g, %d measured, cost %.4g",
            measurement.step,
            measurement.modality,
            reward,
            self.best,
            self.n_measured,
            self.spent,
        )
        if lost:
            self.unlogged.discard(measurement.step)
            return
        self.history.append(row)
        if ctx.on_measurement is not None:
            ctx.on_measurement(row)
