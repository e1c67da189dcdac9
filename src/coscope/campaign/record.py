"""Recording: the trace first, then the agent, the fits, the tracker and the history.

:class:`Recorder` owns what the campaign has used (measurements paid for, cost spent, the
best target value) and the per-measurement history rows; the deciding side reads its
:meth:`Recorder.budget_state`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import replace

from coscope.campaign.context import CampaignContext
from coscope.campaign.decide import BudgetState
from coscope.campaign.fits import FitBook
from coscope.types import Measurement, Proposal


class Recorder:
    """Writes decisions and measurements of one campaign run, in the order DESIGN.md names."""

    def __init__(self, ctx: CampaignContext, fits: FitBook) -> None:
        self.ctx = ctx
        self.fits = fits
        self.history: list[dict[str, float]] = []
        self.best = -math.inf
        self.spent = 0.0
        self.n_measured = 0

    def budget_state(self, inflight: Sequence[Proposal] = ()) -> BudgetState:
        """Used and committed budget with ``inflight`` decisions not yet recorded."""
        cost = float(sum(p.expected_cost for p in inflight))
        return BudgetState(self.n_measured, self.spent, len(inflight), cost)

    def restore(self, measurements: list[Measurement], n_paid: int) -> None:
        """Tell the agent the stored ``measurements``; ``n_paid`` of them the campaign paid."""
        self.spent = float(sum(m.cost for m in measurements))
        self.n_measured = n_paid
        observations = self.ctx.feed_agent(measurements)
        self.best = max((o.value for o in observations), default=-math.inf)

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
        return proposal

    def measurement(self, measurement: Measurement, *, replayed: bool = False) -> None:
        """Learn from a measurement; store it first (a replayed one is stored already)."""
        ctx = self.ctx
        if not replayed:
            ctx.store.append_measurement(measurement)  # durable before anyone learns of it
        self.spent += measurement.cost
        self.n_measured += 1
        reward = math.nan
        target = ctx.target
        if measurement.modality == target.modality:
            reward = target.observe(measurement).value
            self.best = max(self.best, reward)
        ctx.agent.ingest_measurements([measurement])
        self.fits.refit_if_due()  # on the executor, before anything else asks the model
        if replayed:  # logged by the run that measured it
            self.fits.take_agent_fits()
            return
        row = {
            "step": float(measurement.step),
            "reward": reward,
            "best_so_far": self.best if math.isfinite(self.best) else math.nan,
            "cost_spent": self.spent,
            "n_measurements": float(self.n_measured),
        }
        row.update(ctx.prediction_metrics())
        self.fits.take_agent_fits()  # a report may have adopted a fit the agent made itself
        self.history.append(row)
        ctx.tracker.log_step(measurement.step, row)
        if ctx.on_measurement is not None:
            ctx.on_measurement(row)
