"""The campaign loop: plain Python, no Prefect, no Dask — those come in through the executor.

One loop, in this order for every event (DESIGN.md, "How data flows"):

1. for each idle instrument, if budget allows: refit when due, ``agent.suggest`` with the
   in-flight locations as pending points, **append the decision to the trace**, submit it;
2. wait for the first measurement to complete;
3. **append it to the trace** (durable first), scalarize it, ``agent.ingest`` it, log it.

With ``queue_depth`` q > 0 every instrument holds up to 1 + q requests: the one it measures
and q queued behind it, decided ahead (seeing all of them as pending) and chained on the
executor so that the next one starts the moment the current one ends, without the loop in
between. Step 1 serves idle instruments first, then fills the queues level by level.

Resume is the same loop started on an existing trace: the agent is rebuilt from the stored
measurements (the model refitted deterministically from the same data and seed), decisions
that were stored but never measured are re-issued with the same request (same noise seed),
and the loop continues. With one instrument the decisions are exactly those of an
uninterrupted run with the same seed. With queues the agent is rebuilt from the measurements
it knew when the last decision was made (its ``n_known``); those stored later are handed back
as completions of requests still "in flight" (not stored again), re-issued ones chained in
step order, so that the next decision again sees what an uninterrupted run would have seen.
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
from coscope.campaign.failures import record_failure
from coscope.campaign.inbox import Inbox
from coscope.campaign.live import LiveSteering
from coscope.campaign.queues import Slot, starts_in_time
from coscope.campaign.theory_intake import (
    THEORY_BATCH,
    batch_steps,
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


def _fit_key(record: FitRecord) -> tuple:
    """What identifies a model an agent fitted itself: its data size and loss, and which of
    its models it is (``role``, ``modality_index``: an agent may fit several per refresh)."""
    hp = record.hyperparameters
    return (record.n_train, record.loss, str(hp.get("role", "")), hp.get("modality_index"))


class CampaignLoop:
    """Drives one campaign over an executor. Build with :func:`coscope.infra.compose`."""

    def __init__(self, ctx: CampaignContext, executor: Executor) -> None:
        self.ctx = ctx
        self.executor = executor
        self.inflight: dict[str, list[Slot]] = {}  # instrument -> its requests, oldest first
        self.history: list[dict[str, float]] = []
        self.inbox = Inbox(ctx.store.path)
        self._n_fits = 0
        self._last_fit: FitRecord | None = None
        self._stored_fits: dict[tuple[int, float], FitRecord] = {}
        self._stored_agent_fits: set[tuple] = set()
        self._resuming = False
        self._best = -math.inf
        self._spent = 0.0
        self._n_measured = 0
        self.steering = LiveSteering(ctx)
        self.pauser: Callable[[int], None] | None = None
        """Blocks while paused until something may have been posted (Prefect pause); None:
        sleep ``pause_poll_s`` and look at the inbox again."""
        self.pause_poll_s = 0.2

    # --- state rebuilt from the trace ----------------------------------------------------
    def restore(self) -> list[Slot]:
        """Rebuild the agent from the trace; returns the requests still to complete.

        Without queues: decisions stored but never measured, to re-issue. With queues
        (``queue_depth`` > 0) the agent gets the measurements known at the last decision
        (its ``n_known``); the later ones come back as replayed slots (``stored``), in step
        order with the re-issued ones.
        """
        store, ctx = self.ctx.store, self.ctx
        complete_batches(store)  # a theory batch cut short by a crash: redo from its sidecar
        measurements = store.measurements()
        if ctx.spec.queue_depth == 0:
            slots = [Slot(p) for p in store.pending_decisions()]
        else:
            decisions = store.decisions()
            known = decisions[-1].n_known if decisions else -1
            batch = batch_steps(store)  # n_known counts the campaign's own measurements
            own = [m for m in measurements if m.step not in batch]
            later = own[known:] if 0 <= known < len(own) else []
            after = {m.step for m in later}
            measurements = [m for m in measurements if m.step not in after]
            stored = {m.step: m for m in later}
            measured = {m.step for m in measurements}
            slots = [Slot(p, None, stored.get(p.step)) for p in decisions if p.step not in measured]
        self._spent = float(sum(m.cost for m in measurements))
        self._n_measured = campaign_measured(store, measurements)  # not theory batches
        observations = ctx.feed_agent(measurements)
        if observations:
            self._best = max(o.value for o in observations)
        fits = store.fits()
        self._n_fits = len(fits)
        self._last_fit = fits[-1] if fits else None
        # refits on a stored data prefix reproduce stored versions: not recorded twice
        self._stored_fits = {(f.n_train, f.loss): f for f in fits}
        self._stored_agent_fits = {_fit_key(f) for f in fits}
        self._resuming = bool(fits)  # until the first new decision: the agent catches up
        return slots

    # --- the queues ----------------------------------------------------------------------
    def slots(self) -> list[Slot]:
        """Every request in flight, queued or replayed, over all instruments."""
        return [slot for queue in self.inflight.values() for slot in queue]

    # --- budget --------------------------------------------------------------------------
    def _budget_allows(self, cost: float, reserve: int = 0) -> bool:
        """Room for one more request of ``cost`` (and ``reserve`` more measurements after it)."""
        budget = self.ctx.spec.budget
        n_done, slots = self._n_measured, self.slots()
        committed = self._spent + sum(s.proposal.expected_cost for s in slots)
        n_committed = n_done + len(slots) + reserve
        if budget.max_measurements is not None and n_committed >= budget.max_measurements:
            return False
        return budget.max_cost is None or committed + cost <= budget.max_cost + 1e-9

    def _may_decide_ahead(self, instrument: str) -> bool:
        """Queue a request only while the budget would still give every instrument one more,
        and while it would start before the rest of the budget is used up (``queues.py``).

        Near the end a request queued on a slow instrument would keep the campaign running
        long after the fast ones ran out of budget; there the queues drain and every
        instrument gets its last requests when idle, as without queues.
        """
        ctx = self.ctx
        active = ctx.active_instruments()
        cost = ctx.instrument_cost(instrument) + sum(ctx.instrument_cost(n) for n in active)
        if not self._budget_allows(cost, reserve=len(active)):
            return False
        slots = self.slots()
        return starts_in_time(
            ctx.spec,
            instrument,
            len(self.inflight.get(instrument, ())),
            active,
            ctx.instrument_cost,
            self._n_measured + len(slots),
            self._spent + sum(s.proposal.expected_cost for s in slots),
        )

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
        if last is None or last.n_train != len(y) or last.loss != state.loss:
            last = self._stored_fits.get((len(y), state.loss))
        if last is not None and last.n_train == len(y) and last.loss == state.loss:
            agent.load_fit(state, last.version, last.step)
            return
        self._stored_fits = {}  # past the stored fits: a resume's catching up is over
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
        pending = [s.proposal.location for s in self.slots()]
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
            pending=[s.proposal for s in self.slots()],
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
            if self._resuming and _fit_key(record) in self._stored_agent_fits:
                continue  # a resume refitting what the trace already holds (same data, seed)
            record = replace(record, version=self._n_fits)
            self.ctx.store.append_fit(record)
            self.ctx.tracker.log_fit(record)
            self._n_fits += 1
            self._last_fit = record

    def _submit(self, proposal: Proposal) -> None:
        """Start it, or queue it behind the instrument's last request (chained)."""
        request = MeasurementRequest.from_proposal(proposal, self.ctx.spec.seed)
        queue = self.inflight.setdefault(proposal.instrument, [])
        after = next((s.handle for s in reversed(queue) if s.handle is not None), None)
        if after is None:
            handle = self.executor.submit(request)
        else:
            handle = self.executor.submit(request, after=after)
        queue.append(Slot(proposal, handle))

    def _resubmit(self, slot: Slot) -> None:
        if slot.stored is None:
            self._submit(slot.proposal)
        else:
            self.inflight.setdefault(slot.proposal.instrument, []).append(slot)

    def _record(self, measurement: Measurement, *, replayed: bool = False) -> None:
        """Learn from a measurement; store it first (a replayed one is stored already)."""
        ctx = self.ctx
        if not replayed:
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
        if replayed:  # logged by the run that measured it
            self._record_agent_fits()
            return
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

        On a stop the loop decides nothing more, records what is in flight and queued (those
        were decided and stored, so they are measured), and returns. When an instrument fails
        its queued requests are not measured (they stay pending; resume re-issues them).
        """
        ctx = self.ctx
        self.steering.start()  # interventions already in the trace, before the agent is rebuilt
        for slot in self.restore():
            self._resubmit(slot)
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
                step, arrived, exhausted = self._decide(step)
            if arrived:
                continue
            if not self.inflight:
                if paused:
                    self._wait_paused(step)
                    continue
                break
            for slot in self._completed():
                try:
                    measurement = slot.stored or self.executor.result(slot.handle)
                except InstrumentError as exc:
                    record_failure(ctx.store, ctx.tracker, slot.proposal, exc)  # never dropped
                    if status != "failed":
                        status, reason = (
                            "failed",
                            f"instrument '{slot.proposal.instrument}' failed at step "
                            f"{slot.proposal.step}: {exc}",
                        )
                    stopping = exhausted = True
                    continue
                if slot.stored is not None:
                    self._record(measurement, replayed=True)
                else:
                    self._record(self.steering.priced(measurement, slot.proposal))
        if stopping and status != "failed":
            status, reason = "stopped", "stopped on request"
        if status == "finished":
            reason = self._finish_reason()
        return LoopOutcome(status, reason, self._n_measured, self._spent, self.history)

    def _decide(self, step: int) -> tuple[int, bool, bool]:
        """Give every instrument with room a decision: idle ones first, then queue by queue level.

        A request is queued behind another only while :meth:`_may_decide_ahead`.

        Returns:
            ``(next step, a request arrived in the inbox, budget or candidates exhausted)``.
        """
        ctx = self.ctx
        for level in range(ctx.spec.queue_depth + 1):
            for name in ctx.active_instruments():
                if len(self.inflight.get(name, ())) > level:
                    continue
                if level > 0 and not self._may_decide_ahead(name):
                    continue
                proposal = self._propose(name, step)
                if self.inbox.pending():
                    return step, True, False
                if proposal is None:
                    return step, False, True
                proposal = replace(proposal, t_decided=time.time(), n_known=self._n_measured)
                ctx.store.append_decision(proposal)
                # caught up once the stored later measurements (queues) are replayed too:
                # from then on every fit is new, even one that repeats an earlier model
                self._resuming = self._resuming and any(s.stored is not None for s in self.slots())
                ctx.tracker.log_decision(proposal)
                self._submit(proposal)
                step += 1
        return step, False, False

    def _completed(self) -> list[Slot]:
        """Wait for the first completions; take their slots off the queues, in step order.

        Replayed slots (resume) count as completed at once, together with whatever the
        executor has finished.
        """
        slots = self.slots()
        done = [s for s in slots if s.stored is not None]
        live = [s for s in slots if s.handle is not None]
        if live:
            by_handle = {id(s.handle): s for s in live}
            done += [by_handle[id(h)] for h in self.executor.wait_first([s.handle for s in live])]
        done.sort(key=lambda s: s.proposal.step)
        for slot in done:
            queue = self.inflight[slot.proposal.instrument]
            queue.remove(slot)
            if not queue:
                del self.inflight[slot.proposal.instrument]
        return done

    def _finish_reason(self) -> str:
        budget, n = self.ctx.spec.budget, self._n_measured
        if budget.max_measurements is not None and n >= budget.max_measurements:
            return f"measurement budget reached ({n} of {budget.max_measurements})"
        if budget.max_cost is not None:
            return f"cost budget reached ({self._spent:g} of {budget.max_cost:g})"
        return "every candidate location has been measured"
