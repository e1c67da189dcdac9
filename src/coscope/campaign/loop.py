"""The campaign loop: plain Python, no Prefect, no Dask — those come in through the executor.

One loop, in this order for every event (DESIGN.md, "How data flows"):

1. for each idle instrument, if budget allows: refit when due, ``agent.suggest`` with the
   in-flight locations as pending points, **append the decision to the trace**, submit it;
2. wait for the first measurement to complete;
3. **append it to the trace** (durable first), scalarize it, ``agent.ingest`` it, log it.

Resume is the same loop started on an existing trace: the agent is rebuilt from the stored
measurements (the model refitted deterministically from the same data and seed), decisions
that were stored but never measured are re-issued with the same request (same noise seed),
and the loop continues. With one instrument the decisions are exactly those of an
uninterrupted run with the same seed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from coscope.agents.protocols import ModalityChooser
from coscope.campaign.context import CampaignContext
from coscope.campaign.executors import Executor
from coscope.campaign.inbox import Inbox
from coscope.campaign.live import LiveSteering
from coscope.campaign.theory_intake import (
    THEORY_BATCH,
    campaign_measured,
    complete_batches,
    take_batch,
)
from coscope.errors import InstrumentError
from coscope.types import FitRecord, Measurement, MeasurementRequest, Observation, Proposal

log = logging.getLogger(__name__)


@dataclass
class LoopOutcome:
    """How a run of the loop ended.

    Attributes:
        status: ``"finished"`` (budget or candidates exhausted), ``"stopped"`` (asked to
            stop) or ``"failed"`` (an instrument failed; resume retries its decision).
        reason: One sentence.
        n_measurements: Measurements in the trace at the end.
        cost_spent: Total cost in the trace at the end.
        history: Per measurement appended in this run: step, reward, best, cost, rmse.
    """

    status: str
    reason: str
    n_measurements: int
    cost_spent: float
    history: list[dict[str, float]] = field(default_factory=list)


class CampaignLoop:
    """Drives one campaign over an executor. Build with :func:`coscope.infra.compose`."""

    def __init__(self, ctx: CampaignContext, executor: Executor) -> None:
        self.ctx = ctx
        self.executor = executor
        self.inflight: dict[str, tuple[Proposal, object]] = {}  # instrument -> (proposal, handle)
        self.history: list[dict[str, float]] = []
        self.inbox = Inbox(ctx.store.path)
        self._n_fits = 0
        self._last_fit: FitRecord | None = None
        self._best = -math.inf
        self._spent = 0.0
        self._n_measured = 0
        self.steering = LiveSteering(ctx)
        self.pauser: Callable[[int], None] | None = None
        """Blocks while paused until something may have been posted (Prefect pause); None:
        sleep ``pause_poll_s`` and look at the inbox again."""
        self.pause_poll_s = 0.2

    # --- state rebuilt from the trace ----------------------------------------------------
    def restore(self) -> list[Proposal]:
        """Rebuild the agent from the trace; returns decisions stored but never measured."""
        store, ctx = self.ctx.store, self.ctx
        complete_batches(store)  # a theory batch cut short by a crash: redo from its sidecar
        measurements = store.measurements()
        self._spent = float(sum(m.cost for m in measurements))
        self._n_measured = campaign_measured(store, measurements)  # not theory batches
        observations = ctx.feed_agent(measurements)
        if observations:
            self._best = max(o.value for o in observations)
        fits = store.fits()
        self._n_fits = len(fits)
        self._last_fit = fits[-1] if fits else None
        return store.pending_decisions()

    # --- budget --------------------------------------------------------------------------
    def _budget_allows(self, cost: float) -> bool:
        budget = self.ctx.spec.budget
        n_done = self._n_measured
        committed = self._spent + sum(p.expected_cost for p, _ in self.inflight.values())
        if (
            budget.max_measurements is not None
            and n_done + len(self.inflight) >= budget.max_measurements
        ):
            return False
        return budget.max_cost is None or committed + cost <= budget.max_cost + 1e-9

    # --- one decision --------------------------------------------------------------------
    def _refit_if_due(self) -> None:
        """Fit on the executor when the agent's data schedule asks for it.

        After a resume the first fit reproduces the last stored version (same data prefix,
        same seed, so the same model); it is loaded under that version and not stored again.
        """
        agent, ctx = self.ctx.agent, self.ctx
        needs_fit = getattr(agent, "needs_fit", None)  # a chooser may fit inside propose()
        if needs_fit is None or not needs_fit(0):
            return
        X, y = agent.training_data()
        state = self.executor.fit(
            agent.model_kind,
            X,
            y,
            agent.fit_seed(),
            ctx.spec.policy.fit_iterations,
            agent.fit_options(),
        )
        last = self._last_fit
        if last is not None and last.n_train == len(y) and last.loss == state.loss:
            agent.load_fit(state, last.version, last.step)
            return
        version = self._n_fits
        record = agent.load_fit(state, version, len(y))
        ctx.store.append_fit(record)
        ctx.tracker.log_fit(record)
        if version % ctx.spec.checkpoint_every == 0:
            ctx.tracker.log_checkpoint(state, version)
        embedding = getattr(agent, "embedding", None)
        if embedding is not None:  # DKL: the latent picture of every pixel, kept per version
            ctx.tracker.log_array(f"embeddings/v{version:04d}.npy", embedding())
        self._n_fits += 1
        self._last_fit = record

    def _propose(self, instrument: str, step: int) -> Proposal | None:
        ctx = self.ctx
        if isinstance(ctx.agent, ModalityChooser):
            return self._propose_any_modality(instrument, step)
        cost = ctx.instrument_cost(instrument)
        if not self._budget_allows(cost):
            return None
        self._refit_if_due()
        pending = [p.location for p, _ in self.inflight.values()]
        proposals = ctx.agent.suggest(
            1,
            step=step,
            instrument=instrument,
            modality=ctx.target_modality,
            pending=pending,
            expected_cost=cost,
        )
        return proposals[0] if proposals else None

    def _propose_any_modality(self, instrument: str, step: int) -> Proposal | None:
        """Ask a :class:`ModalityChooser` agent; ``None`` when it or the budget says no."""
        ctx = self.ctx
        if not self._budget_allows(0.0):  # the count limit; the cost is known after choosing
            return None
        self._refit_if_due()
        use_executor = getattr(ctx.agent, "use_executor", None)  # it fits on our executor
        if use_executor is not None:
            use_executor(self.executor)
        proposal = ctx.agent.propose(
            step=step,
            instrument=instrument,
            offered=ctx.offered_modalities(instrument),
            pending=[p for p, _ in self.inflight.values()],
            cost=ctx.expected_cost,
        )
        self._record_agent_fits()
        if proposal is None or not self._budget_allows(proposal.expected_cost):
            return None
        return proposal

    def _record_agent_fits(self) -> None:
        """Record fits the agent made itself (``take_fits``), numbered in trace order."""
        take = getattr(self.ctx.agent, "take_fits", None)
        for record in take() if take is not None else ():
            record = replace(record, version=self._n_fits)
            self.ctx.store.append_fit(record)
            self.ctx.tracker.log_fit(record)
            self._n_fits += 1
            self._last_fit = record

    def _submit(self, proposal: Proposal) -> None:
        request = MeasurementRequest.from_proposal(proposal, self.ctx.spec.seed)
        self.inflight[proposal.instrument] = (proposal, self.executor.submit(request))

    def _record(self, measurement: Measurement) -> None:
        ctx = self.ctx
        ctx.store.append_measurement(measurement)  # durable before anyone learns of it
        self._spent += measurement.cost
        self._n_measured += 1
        reward = math.nan
        if measurement.modality == ctx.target_modality:
            obs: Observation = ctx.observe(measurement)
            reward = obs.value
            self._best = max(self._best, obs.value)
        if isinstance(ctx.agent, ModalityChooser):
            ctx.agent.ingest_measurements([measurement])
        elif measurement.modality == ctx.target_modality:  # a grid agent sees only its target
            ctx.agent.ingest([obs])
        self._refit_if_due()  # on the executor, before anything else asks the model
        row = {
            "step": float(measurement.step),
            "reward": reward,
            "best_so_far": self._best if math.isfinite(self._best) else math.nan,
            "cost_spent": self._spent,
            "n_measurements": float(self._n_measured),
        }
        row.update(ctx.prediction_metrics())
        self._record_agent_fits()  # a report may have adopted a fit the agent made itself
        self.history.append(row)
        ctx.tracker.log_step(measurement.step, row)
        if ctx.on_measurement is not None:
            ctx.on_measurement(row)

    # --- the loop ------------------------------------------------------------------------
    def _stop_requested(self, step: int) -> bool:
        """Take inbox requests, validate, record and apply them; True when one asks to stop."""
        self._steer(step, stale=False)
        return self.steering.settings.stopped

    def _steer(self, step: int, *, stale: bool) -> None:
        ctx = self.ctx
        for item in self.inbox.take(step):
            if item.kind == THEORY_BATCH:  # simulations a batch paid for: into the trace
                step = take_batch(ctx, item, step, self._n_measured)
            elif self.steering.take([item], step, stale=stale):  # re-scalarized
                self._best = max((o.value for o in ctx.agent.observations), default=-math.inf)

    def _wait_paused(self, step: int) -> None:
        """Nothing in flight and paused: block until a request may have arrived."""
        if self.pauser is not None:
            self.pauser(step)
        else:
            time.sleep(self.pause_poll_s)

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> LoopOutcome:
        """Run until the budget or candidates are exhausted, a stop request, or ``should_stop()``.

        On a stop the loop proposes nothing more, records what is in flight, and returns.
        """
        ctx = self.ctx
        self.steering.start()  # interventions already in the trace, before the agent is rebuilt
        for proposal in self.restore():
            self._submit(proposal)
        step = ctx.store.counts()["decisions"]
        self._steer(step, stale=True)  # posted while no loop ran (a stale stop is refused)
        step = ctx.store.counts()["decisions"]  # a theory batch taken adds decisions
        exhausted = False
        status, reason = "finished", ""
        stopping = False
        while True:
            stopping = stopping or should_stop() or self._stop_requested(step)
            step = ctx.store.counts()["decisions"]  # a theory batch taken adds decisions
            paused = self.steering.settings.paused and not stopping
            arrived = False  # a request came in while deciding: take it before deciding
            if not stopping and not exhausted and not paused:
                for name in ctx.active_instruments():
                    if name in self.inflight:
                        continue
                    proposal = self._propose(name, step)
                    if self.inbox.pending():
                        arrived = True
                        break
                    if proposal is None:
                        exhausted = True
                        break
                    proposal = replace(proposal, t_decided=time.time(), n_known=self._n_measured)
                    ctx.store.append_decision(proposal)
                    ctx.tracker.log_decision(proposal)
                    self._submit(proposal)
                    step += 1
            if arrived:
                continue
            if not self.inflight:
                if paused:
                    self._wait_paused(step)
                    continue
                break
            handles = {id(h): name for name, (_, h) in self.inflight.items()}
            for handle in self.executor.wait_first([h for _, h in self.inflight.values()]):
                name = handles[id(handle)]
                proposal, _ = self.inflight.pop(name)
                try:
                    measurement = self.executor.result(handle)
                except InstrumentError as exc:
                    status, reason = (
                        "failed",
                        f"instrument '{name}' failed at step {proposal.step}: {exc}",
                    )
                    stopping = exhausted = True
                    continue
                self._record(self.steering.priced(measurement, proposal))
        if stopping and status != "failed":
            status, reason = "stopped", "stopped on request"
        if status == "finished":
            reason = self._finish_reason()
        return LoopOutcome(status, reason, self._n_measured, self._spent, self.history)

    def _finish_reason(self) -> str:
        budget, n = self.ctx.spec.budget, self._n_measured
        if budget.max_measurements is not None and n >= budget.max_measurements:
            return f"measurement budget reached ({n} of {budget.max_measurements})"
        if budget.max_cost is not None:
            return f"cost budget reached ({self._spent:g} of {budget.max_cost:g})"
        return "every candidate location has been measured"
