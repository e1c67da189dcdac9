"""The campaign loop: plain Python, no Prefect, no Dask — those come in through the executor.

The loop is only the event loop; each event is handled by its own part (DESIGN.md, "How data
flows"):

1. **decide** (:mod:`.decide`, pure): for each idle instrument, if the budget allows, ask the
   agent for a proposal given every pending one; the loop **appends the decision to the
   trace** (:mod:`.record`) and submits it (**execute**, :mod:`.executors`);
2. wait for the first measurement to complete;
3. **record** it (:mod:`.record`): the trace first (durable), then the agent, the fits
   (:mod:`.fits`), the tracker and the history;
4. between steps, take the inbox's requests: interventions go to steering (:mod:`.live`),
   requests of a :class:`~coscope.campaign.sources.MeasurementSource` (theory batches) to it,
   answers to waiting decisions to the approval gate (:mod:`.gate`).

Under the approval gate (``approval`` in the spec) a decision of a gated instrument is stored
and then held, not submitted, until a person approves (or modifies) it: it is pending for the
agent and the budget meanwhile. A rejected (or skipped) decision is never measured; the agent
keeps seeing it as pending, so that it proposes something else.

With ``queue_depth`` q > 0 every instrument holds up to 1 + q requests: the one it measures
and q queued behind it, decided ahead (seeing all of them as pending) and chained on the
executor so that the next one starts the moment the current one ends, without the loop in
between. Decisions serve idle instruments first, then fill the queues level by level.

Resume is the same loop started on an existing trace: the agent is rebuilt from the stored
measurements (the model refitted deterministically from the same data and seed), decisions
that were stored but never measured are re-issued with the same request (same noise seed),
and the loop continues. With one instrument the decisions are exactly those of an
uninterrupted run with the same seed. With queues the agent is rebuilt from the measurements
it knew when the last decision was made (its ``n_known``); those stored later are handed back
as completions of requests still "in flight" (not stored again), re-issued ones chained in
step order, so that the next decision again sees what an uninterrupted run would have seen.
What the trace holds and the tracker lacks after a crash is logged on the way
(:mod:`.reconcile`), so MLflow too ends up holding every step exactly once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from coscope.agents.protocols import Ask
from coscope.campaign.context import CampaignContext
from coscope.campaign.decide import decide, may_decide_ahead, wants_decision
from coscope.campaign.executors import Executor
from coscope.campaign.failures import FailureBook
from coscope.campaign.fits import FitBook
from coscope.campaign.gate import APPROVAL, ApprovalGate
from coscope.campaign.inbox import Inbox
from coscope.campaign.live import LiveSteering
from coscope.campaign.queues import Slot
from coscope.campaign.reconcile import log_missing_records, missing_measurements
from coscope.campaign.record import Recorder
from coscope.campaign.sources import MeasurementSource, TheoryBatches
from coscope.campaign.stopping import StopWatch
from coscope.errors import InstrumentError
from coscope.types import MeasurementRequest, Proposal

log = logging.getLogger(__name__)


@dataclass
class LoopOutcome:
    """How a run of the loop ended.

    Attributes:
        status: ``"finished"`` (budget or candidates exhausted, or the stopping rule fired),
            ``"stopped"`` (asked to stop) or ``"failed"`` (an instrument failed; resume
            retries its decision).
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
    """Drives one campaign over an executor. Build with :func:`coscope.infra.compose`.

    Args:
        ctx: The wired campaign.
        executor: Where measurements and fits run.
        sources: Sources of measurements polled between steps (default: theory batches).
    """

    def __init__(
        self,
        ctx: CampaignContext,
        executor: Executor,
        sources: Sequence[MeasurementSource] | None = None,
    ) -> None:
        self.ctx = ctx
        self.executor = executor
        self.inflight: dict[str, list[Slot]] = {}  # instrument -> its requests, oldest first
        self.inbox = Inbox(ctx.store.path)
        self.fits = FitBook(ctx, executor)
        self.recorder = Recorder(ctx, self.fits)
        self.sources = list(sources) if sources is not None else [TheoryBatches(ctx)]
        self.steering = LiveSteering(ctx)
        self.gate = ApprovalGate(ctx)
        self.approver: Callable[[int, float | None], None] | None = None
        """Blocks while only decisions waiting for approval are left, until an answer may have
        arrived or ``seconds`` (its 2nd argument, None: no timeout) passed (Prefect form);
        None: sleep ``pause_poll_s`` (at most the seconds left) and look again."""
        self.pauser: Callable[[int], None] | None = None
        """Blocks while paused until something may have been posted (Prefect pause); None:
        sleep ``pause_poll_s`` and look at the inbox again."""
        self.pause_poll_s = 0.2
        self.release: Callable[[Proposal], None] = self._submit
        """Called with each decision that an answer taken from the inbox released. Default:
        submit it to the executor. The Python API, whose caller measures, queues it instead."""
        self.failures = FailureBook(ctx.spec.failures, ())
        """Failed measurements and the spec's failure policy (rebuilt from the trace)."""
        self.retired: list[Proposal] = []
        """Decisions the failure policy retired: never re-issued, their locations taken."""
        self.down: set[str] = set()
        """Instruments a tolerant failure policy stopped (``instrument_down``)."""
        self.watch = StopWatch(ctx.spec.stopping)
        """The spec's stopping rule over the stored decisions (rebuilt from the trace)."""

    @property
    def history(self) -> list[dict[str, float]]:
        """Per-measurement rows recorded in this run."""
        return self.recorder.history

    # --- state rebuilt from the trace ----------------------------------------------------
    def restore(self) -> list[Slot]:
        """Rebuild the agent from the trace; returns the requests still to complete.

        First the tracker gets what a crash kept from it (:mod:`.reconcile`): the stored
        decisions and fits at once, the measurement rows as the recorder hands them back.

        Without queues: decisions stored but never measured, to re-issue. With queues
        (``queue_depth`` > 0) the agent gets the measurements known at the last decision
        (its ``n_known``); the later ones come back as replayed slots (``stored``), in step
        order with the re-issued ones.
        """
        store, ctx = self.ctx.store, self.ctx
        for source in self.sources:
            source.recover()
        self.failures = FailureBook(ctx.spec.failures, store.interventions())
        retired = self.failures.retired
        self.retired = [d for d in store.decisions() if d.step in retired]
        self.watch = StopWatch(ctx.spec.stopping, store.decisions(), store.interventions())
        measurements = store.measurements()
        paid = set().union(*(s.paid_steps() for s in self.sources))  # not the campaign's
        logged = ctx.tracker.logged_steps()  # what a crash kept from the tracker
        unlogged = missing_measurements(measurements, paid, logged)
        if ctx.spec.queue_depth == 0:
            slots = [Slot(p) for p in store.pending_decisions()]  # without the retired
        else:
            decisions = store.decisions()
            known = decisions[-1].n_known if decisions else -1
            own = [m for m in measurements if m.step not in paid]  # n_known counts these
            later = own[known:] if 0 <= known < len(own) else []
            after = {m.step for m in later}
            measurements = [m for m in measurements if m.step not in after]
            stored = {m.step: m for m in later}
            measured = {m.step for m in measurements}
            slots = [
                Slot(p, None, stored.get(p.step))
                for p in decisions
                if p.step not in measured and p.step not in retired
            ]
        fits = store.fits()
        log_missing_records(ctx.tracker, store.decisions(), fits, logged)
        self.fits.restore(fits)
        self.recorder.restore(measurements, paid, unlogged)
        return self.gate.restore(slots)

    # --- the queues ----------------------------------------------------------------------
    def slots(self) -> list[Slot]:
        """Every request in flight, queued or replayed, over all instruments."""
        return [slot for queue in self.inflight.values() for slot in queue]

    def pending(self) -> list[Proposal]:
        """Every proposal decided but not yet recorded as measured (in flight, queued or
        waiting for approval), over all instruments."""
        return [s.proposal for s in self.slots()] + list(self.gate.waiting.values())

    def enqueue(self, slot: Slot) -> None:
        """Put ``slot`` at the end of its instrument's queue as it is (not started: a replayed
        measurement, or a proposal the Python API hands to its caller)."""
        self.inflight.setdefault(slot.proposal.instrument, []).append(slot)

    def n_queued(self, instrument: str) -> int:
        """Requests of ``instrument`` in flight, queued or waiting for approval."""
        return len(self.inflight.get(instrument, ())) + self.gate.n_waiting(instrument)

    # --- one decision --------------------------------------------------------------------
    def propose(self, instrument: str, step: int) -> Proposal | None:
        """Ask the agent for ``instrument``'s next request; None when it or the budget says no."""
        ctx, pending = self.ctx, self.pending()
        if self.watch.stopped:  # the stopping rule fired: nothing more is decided
            return None
        if not self.recorder.budget_state(pending).allows(
            ctx.spec.budget, ctx.cheapest_cost(instrument)
        ):
            return None
        self.fits.refit_if_due()
        self.fits.connect()
        ask = Ask(
            step=step,
            instrument=instrument,
            offered=tuple(ctx.offered_modalities(instrument)),
            pending=(*pending, *self.retired, *self.gate.dropped),  # never again
            price=ctx.expected_cost,
        )
        proposal = decide(ctx.agent, ask, ctx.spec.budget, self.recorder.budget_state(pending))
        self.fits.take_agent_fits()
        return proposal

    def _may_decide_ahead(self, instrument: str) -> bool:
        ctx = self.ctx
        return may_decide_ahead(
            ctx.spec,
            instrument,
            self.n_queued(instrument),
            self.active_instruments(),
            ctx.reserved_cost,
            self.recorder.budget_state(self.pending()),
        )

    def active_instruments(self) -> list[str]:
        """Instruments offering what the agent proposes, but those the failure policy stopped."""
        return [n for n in self.ctx.active_instruments() if n not in self.down]

    # --- executing -----------------------------------------------------------------------
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

    def _requeue(self, instrument: str) -> None:
        """Submit ``instrument``'s queued requests again: they were chained behind a request
        that failed (and would fail with it) but never ran; same requests, same seeds."""
        queue = self.inflight.pop(instrument, [])
        for slot in queue:
            if slot.stored is not None:
                self.enqueue(slot)
            else:
                self._submit(slot.proposal)

    def _release_or_hold(self, proposal: Proposal) -> None:
        """Submit a stored decision, or hold it for approval when its instrument is gated."""
        if self.gate.applies(proposal.instrument):
            self.gate.hold(proposal)
        else:
            self._submit(proposal)

    def _resubmit(self, slot: Slot) -> None:
        if slot.stored is None:
            self._submit(slot.proposal)
        else:
            self.enqueue(slot)

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

    # --- between steps -------------------------------------------------------------------
    def _stop_requested(self, step: int) -> bool:
        """Take inbox requests, validate, record and apply them; True when one asks to stop."""
        self.steer(step, stale=False)
        return self.steering.settings.stopped

    def steer(self, step: int, *, stale: bool) -> None:
        """Hand each inbox request to the source that takes its kind, or to steering."""
        by_kind = {kind: s for s in self.sources for kind in s.kinds}
        for item in self.inbox.take(step):
            source = by_kind.get(item.kind)
            if source is not None:  # measurements from elsewhere: into the trace
                step = source.take(item, step, self.recorder.n_measured)
            elif item.kind == APPROVAL:  # an answer to a waiting decision
                released = self.gate.take(item, step)
                if released is not None:
                    self.release(released)
            elif self.steering.take([item], step, stale=stale):  # re-scalarized
                self.recorder.rescore()

    def _wait_paused(self, step: int) -> None:
        """Nothing in flight and paused: block until a request may have arrived."""
        if self.pauser is not None:
            self.pauser(step)
        else:
            time.sleep(self.pause_poll_s)

    def _wait_answers(self, step: int) -> None:
        """Only decisions waiting for approval are left: block until an answer may have
        arrived or the first timeout is due."""
        left = self.gate.seconds_left()
        if self.approver is not None:
            self.approver(step, left)
        else:
            time.sleep(self.pause_poll_s if left is None else min(self.pause_poll_s, left))

    # --- the loop ------------------------------------------------------------------------
    def run(self, should_stop: Callable[[], bool] = lambda: False) -> LoopOutcome:
        """Run until the budget or candidates are exhausted, a stop request, or ``should_stop()``.

        On a stop the loop decides nothing more, records what is in flight and queued (those
        were decided and stored, so they are measured), and returns. When an instrument fails
        its queued requests are not measured (they stay pending; resume re-issues them).
        """
        ctx, recorder = self.ctx, self.recorder
        self.steering.start()  # interventions already in the trace, before the agent is rebuilt
        for slot in self.restore():
            self._resubmit(slot)
        step = ctx.store.counts()["decisions"]
        self.steer(step, stale=True)  # posted while no loop ran (a stale stop is refused)
        exhausted = stopping = False
        status, reason = "finished", ""
        n_dropped = len(self.gate.dropped)
        while True:
            if len(self.gate.dropped) != n_dropped:  # a rejection gives its budget back
                exhausted, n_dropped = stopping, len(self.gate.dropped)
            step = ctx.store.counts()["decisions"]  # a source may have added decisions
            stopping = stopping or should_stop() or self._stop_requested(step)
            step = ctx.store.counts()["decisions"]
            stopping = stopping or self.gate.expire(step)
            paused = self.steering.settings.paused and not stopping
            arrived = False  # a request came in while deciding: take it before deciding
            if not stopping and not exhausted and not paused:
                arrived, exhausted = self._decide(step)
            if arrived:
                continue
            if not self.inflight:
                if self.gate.waiting and not stopping:
                    self._wait_answers(step)
                    continue
                if paused:
                    self._wait_paused(step)
                    continue
                break
            requeue: set[str] = set()  # instruments whose queue follows a tolerated failure
            for slot in self._completed():
                name = slot.proposal.instrument
                try:
                    measurement = slot.stored or self.executor.result(slot.handle)
                except InstrumentError as exc:
                    if name in requeue and not stopping:
                        self._submit(slot.proposal)  # chained behind the failure: never ran
                        continue
                    verdict = self.failures.judge(slot.proposal, exc, recorder.n_measured)
                    self.failures.record(ctx.store, ctx.tracker, slot.proposal, exc, verdict.retire)
                    if verdict.retire:
                        self.retired.append(slot.proposal)
                        constrained = ctx.abilities.constrained
                        if constrained is not None:  # learned infeasible (feasibility: learn)
                            constrained.mark_infeasible(slot.proposal.step, slot.proposal.location)
                    if verdict.stop_instrument:
                        self.down.add(name)
                        self.inflight.pop(name, None)  # its queue stays pending for resume
                    if verdict.stop_campaign:
                        if status != "failed":
                            status, reason = (
                                "failed",
                                f"instrument '{name}' failed at step {slot.proposal.step}: {exc}",
                            )
                        stopping = exhausted = True
                    elif not verdict.stop_instrument:
                        requeue.add(name)
                        self._requeue(name)
                    continue
                if slot.stored is not None:
                    recorder.measurement(measurement, replayed=True)
                else:
                    recorder.measurement(self.steering.priced(measurement, slot.proposal))
            if self.down and not self.active_instruments() and not self.inflight:
                if status != "failed":
                    down = ", ".join(sorted(self.down))
                    status, reason = "failed", f"every instrument went down ({down})"
                stopping = exhausted = True
        if stopping and status != "failed":
            status, reason = "stopped", self.gate.stop_reason or "stopped on request"
        if status == "finished":
            reason = self._finish_reason()
            if self.down:
                reason += (
                    f"; instrument(s) {', '.join(sorted(self.down))} went down (resume "
                    "re-issues their pending decisions)"
                )
        return LoopOutcome(status, reason, recorder.n_measured, recorder.spent, self.history)

    def _decide(self, step: int) -> tuple[bool, bool]:
        """Give every instrument with room a decision: idle ones first, then queue by queue level.

        Returns:
            ``(a request arrived in the inbox, budget or candidates exhausted)``.
        """
        ctx = self.ctx
        for level in range(ctx.spec.queue_depth + 1):
            for name in self.active_instruments():
                n_queued = self.n_queued(name)
                if not wants_decision(level, n_queued, partial(self._may_decide_ahead, name)):
                    continue
                proposal = self.propose(name, step)
                if self.inbox.pending():
                    return True, False
                if proposal is None:
                    return False, True
                replaying = any(s.stored is not None for s in self.slots())
                stored = self.recorder.decision(proposal, replaying=replaying)
                self._release_or_hold(stored)
                step += 1
                if self.watch.observe(stored):  # the last one is measured, then no more
                    record = self.watch.record(step)
                    ctx.store.append_intervention(record)
                    ctx.tracker.log_intervention(record)
                    log.info("%s", self.watch.reason)
        return False, False

    def _finish_reason(self) -> str:
        budget, n = self.ctx.spec.budget, self.recorder.n_measured
        if self.watch.stopped:
            limit = f" of {budget.max_measurements}" if budget.max_measurements else ""
            return f"{self.watch.reason}; {n}{limit} measurements"
        if budget.max_measurements is not None and n >= budget.max_measurements:
            return f"measurement budget reached ({n} of {budget.max_measurements})"
        if budget.max_cost is not None:
            return f"cost budget reached ({self.recorder.spent:g} of {budget.max_cost:g})"
        return "every candidate location has been measured"
