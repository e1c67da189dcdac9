"""A campaign driven from Python: ``ask`` for proposals, measure them yourself, ``tell`` results.

:class:`Campaign` drives the loop's own parts (:class:`~coscope.campaign.loop.CampaignLoop`'s
restore, decide, record, fits, steering and sources) with the caller as the executor of the
measurements, so a campaign run this way leaves what ``coscope run`` leaves:

* each decision is appended to the trace before ``ask`` returns it; a told result is appended
  before the agent learns of it; fits, decisions and history rows go to MLflow;
* interventions posted with ``coscope intervene`` are taken before every decision;
* re-opening the trace rebuilds the agent from it; proposals asked but never told come back
  from ``ask`` (same step, same request seed) before new ones are decided;
* ``coscope status``, ``coscope replay`` and ``coscope resume`` work on the trace;
* under the approval gate (``docs/approval.md``) a proposal of a gated instrument waits:
  :meth:`Campaign.approve` (as it is, or modified) or :meth:`Campaign.reject` it — or answer
  with ``coscope approve`` from a shell — before it is told. Timeouts do not apply here (the
  caller decides how long to wait).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from types import TracebackType
from typing import Any

from coscope.agents.protocols import AgentReport
from coscope.api.checks import (
    Proposals,
    known_instrument,
    pending_step,
    step_of,
    told_measurement,
    why_short,
)
from coscope.api.opening import SpecLike, as_spec, use_threads
from coscope.campaign.auth import os_user
from coscope.campaign.executors import Executor, LocalExecutor
from coscope.campaign.loop import CampaignLoop, LoopOutcome
from coscope.campaign.queues import Slot
from coscope.config import CampaignSpec
from coscope.errors import ConfigError, InstrumentError, ProposalError, StoreError
from coscope.infra.compose import mark_running, open_context
from coscope.instruments import Sample
from coscope.spaces import PixelGrid, Space
from coscope.types import Measurement, MeasurementRequest, Proposal

log = logging.getLogger(__name__)


class Campaign:
    """One campaign, open for ask/tell. Build with :meth:`create` or :meth:`open`.

    Attributes:
        spec: The campaign's current spec (interventions applied).
        sample: The sample (grid, structure image, ground truth when known).
        store_path: The experimental trace.
        reason: Why the last :meth:`ask` returned fewer proposals than asked (or ``""``).
    """

    def __init__(self, store_path: Path, *, track: bool, executor: Executor | None) -> None:
        self.sample: Sample
        self._ctx, self.sample = open_context(store_path, track=track)
        self.store_path = Path(store_path)
        self._loop = CampaignLoop(self._ctx, executor or LocalExecutor({}))
        self._loop.release = self._released  # the caller measures what an answer releases
        self._handed: set[int] = set()  # steps returned by ask in this session
        self.reason = ""
        self._used_up: str | None = None  # the instrument last refused by budget or agent
        self._closed = False
        try:
            mark_running(self._ctx.store)
            self._restore()
        except BaseException:
            self._shut("interrupted", "the Python API failed while opening the campaign")
            raise

    # --- opening ----------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        spec: SpecLike,
        *,
        store: str | Path | None = None,
        run_dir: str | Path | None = None,
        track: bool = True,
        executor: Executor | None = None,
        threads: int | None = None,
    ) -> Campaign:
        """Create a campaign's trace from ``spec``, or continue it if the trace holds it.

        Args:
            spec: A :class:`~coscope.config.CampaignSpec`, a dict of its fields, or a YAML path.
            store: Trace path replacing the spec's (default ``<run_dir>/trace.zarr``).
            run_dir: Run folder replacing the spec's (default ``runs/<name>``).
            track: Record to MLflow (the spec's ``tracking_uri``, or sqlite in the run folder).
            executor: Where fits run (default: in this process).
            threads: Torch/BLAS threads (default ``COSCOPE_TORCH_THREADS``, else 1).

        Raises:
            ConfigError: The spec is invalid, or the store holds another campaign.
        """
        from coscope.infra.runner import prepare_store

        campaign = as_spec(spec, store=store, run_dir=run_dir)
        use_threads(threads)
        path, _ = prepare_store(campaign)  # validated against its sample before writing
        return cls(path, track=track, executor=executor)

    @classmethod
    def open(
        cls,
        store: str | Path,
        *,
        track: bool = True,
        executor: Executor | None = None,
        threads: int | None = None,
    ) -> Campaign:
        """Continue the campaign whose trace is at ``store`` (arguments as in :meth:`create`).

        Raises:
            StoreError: No trace there, or another process has it open for writing.
        """
        path = Path(store)
        if not (path / "zarr.json").exists():
            raise StoreError(
                f"no experimental trace at '{path}': give the store path of a campaign, or "
                "create one with Campaign.create(spec)."
            )
        use_threads(threads)
        return cls(path, track=track, executor=executor)

    def _restore(self) -> None:
        """The agent from the trace, as the loop's resume does; pending decisions kept."""
        loop = self._loop
        loop.steering.start()
        for slot in loop.restore():
            if slot.stored is not None:  # queued campaigns: measured after the last decision
                loop.recorder.measurement(slot.stored, replayed=True)
            else:
                loop.enqueue(Slot(slot.proposal))
        loop.steer(self._ctx.store.counts()["decisions"], stale=True)

    # --- state ------------------------------------------------------------------------
    @property
    def spec(self) -> CampaignSpec:
        return self._ctx.spec

    @property
    def space(self) -> Space:
        """Where the campaign may measure: candidates, their coordinates (``space.units``)."""
        return self._ctx.space or PixelGrid(self.sample.shape, self.sample.pixel_size_um)

    @property
    def offered(self) -> dict[str, list[str]]:
        """Per instrument that ``ask`` proposes for, the modalities it may propose, in spec
        order (``{"afm": ["beps_loop"]}``)."""
        ctx = self._ctx
        return {name: ctx.offered_modalities(name) for name in ctx.active_instruments()}

    @property
    def paused(self) -> bool:
        """Whether a ``pause`` intervention holds the campaign: ``ask`` proposes nothing until
        a ``resume`` is posted (each ``ask`` takes the interventions posted so far)."""
        return self._loop.steering.settings.paused

    @property
    def pending(self) -> list[Proposal]:
        """Proposals asked (in this session or before) and not yet told, in step order."""
        return sorted(self._loop.pending(), key=lambda p: p.step)

    @property
    def history(self) -> list[dict[str, float]]:
        """One row per result told in this session: step, reward, best_so_far, cost_spent…"""
        return self._loop.history

    def request(self, proposal: Proposal) -> MeasurementRequest:
        """What the instrument is asked, with the request seed (campaign seed, step)."""
        return MeasurementRequest.from_proposal(proposal, self.spec.seed)

    def report(self) -> AgentReport:
        """What the agent believes now: mean and std maps, best value and location."""
        self._check_open()
        return self._ctx.agent.report()

    def status(self) -> dict[str, Any]:
        """What ``coscope status --json`` prints for this campaign."""
        from coscope.report.status import campaign_status

        return campaign_status(self.store_path)

    # --- ask / tell -------------------------------------------------------------------
    def ask(self, instrument: str | None = None, n: int = 1) -> Proposals:
        """Proposals to measure next, each appended to the trace before it is returned.

        Proposals asked before and never told (a re-opened campaign) come back first. Each
        new decision follows the interventions posted so far and sees every pending proposal.

        Args:
            instrument: The instrument to ask for; ``None``: every idle one (with nothing
                pending), in spec order.
            n: Proposals per instrument (more than one: measured one after another).

        Returns:
            The proposals; fewer than asked (maybe none) with :attr:`Proposals.reason` saying
            why: the budget is used up, every candidate is measured, paused or stopped.
        """
        self._check_open()
        if n < 1:
            raise ConfigError(f"n={n} asks for no proposal: ask for n >= 1.")
        ctx, loop = self._ctx, self._loop
        self._take_posted()
        active = ctx.active_instruments()
        names = [known_instrument(ctx.spec, active, instrument)] if instrument else active
        out: list[Proposal] = []
        reasons: list[str] = []
        for name in names:
            queue = [s.proposal for s in loop.inflight.get(name, [])]
            queue += [p for p in self.waiting if p.instrument == name]
            again = [p for p in queue if p.step not in self._handed][:n]
            if instrument is None and queue and not again:
                reasons.append(
                    f"'{name}' is busy with step {queue[0].step}: tell its result first, or "
                    f"ask('{name}', n) to queue more."
                )
                continue
            out += again
            for _ in range(n - len(again)):
                proposal, why = self._decide(name)
                if proposal is None:
                    reasons.append(why)
                    break
                out.append(proposal)
        self._handed.update(p.step for p in out)
        self.reason = " ".join(reasons)
        return Proposals(out, self.reason)

    def _take_posted(self) -> None:
        """Take what was posted since the last look: answers to waiting proposals (from
        ``coscope approve`` or the dashboard), interventions, measurements from sources."""
        self._loop.steer(self._ctx.store.counts()["decisions"], stale=False)

    def _released(self, proposal: Proposal) -> None:
        """An answer posted elsewhere released ``proposal``: queue it, and let the next
        :meth:`ask` hand it out again (as answered: maybe moved or with other params)."""
        self._loop.enqueue(Slot(proposal))
        self._handed.discard(proposal.step)

    def _decide(self, instrument: str) -> tuple[Proposal | None, str]:
        """One new decision for ``instrument``, recorded; or ``None`` and why not."""
        ctx, loop = self._ctx, self._loop
        while True:
            step = ctx.store.counts()["decisions"]
            loop.steer(step, stale=False)  # interventions posted so far; sources' batches
            step = ctx.store.counts()["decisions"]
            settings = loop.steering.settings
            if settings.stopped:
                return None, "stopped by an intervention; re-open the campaign to continue."
            if settings.paused:
                return None, (
                    f"paused by an intervention; `coscope intervene {self.store_path} resume` "
                    "to go on."
                )
            proposal = loop.propose(instrument, step)
            if not loop.inbox.pending():  # else: take what arrived, then decide again
                break
        if proposal is None:
            self._used_up = instrument
            return None, self._why_short(instrument)
        stored = loop.recorder.decision(proposal, replaying=False)
        if loop.gate.applies(instrument):
            loop.gate.hold(stored)  # measured once approved
        else:
            loop.enqueue(Slot(stored))
        return stored, ""

    # --- the approval gate ------------------------------------------------------------
    @property
    def waiting(self) -> list[Proposal]:
        """Proposals waiting for approval (asked, neither approved nor rejected), step order."""
        return [self._loop.gate.waiting[s] for s in sorted(self._loop.gate.waiting)]

    def approve(
        self,
        proposal: Proposal | int,
        *,
        location: tuple[int, int] | None = None,
        params: dict[str, Any] | None = None,
        why: str = "",
    ) -> Proposal:
        """Approve a waiting proposal, as it is or modified; returns what to measure.

        Args:
            proposal: The waiting proposal (or its step).
            location: ``(row, col)`` to measure instead: a candidate of the space, neither
                measured nor pending.
            params: Request params instead of the agent's (ones the instrument accepts).
            why: Note recorded with the answer.

        Raises:
            ApprovalError: The step does not wait, or the modification is invalid (one
                sentence; nothing recorded).
        """
        payload: dict[str, Any] = {"step": step_of(proposal), "action": "approve"}
        if location is not None:
            payload["location"] = [int(v) for v in location]
        if params is not None:
            payload["params"] = dict(params)
        released = self._answer(payload, why)
        assert released is not None  # an approval always releases
        self._loop.enqueue(Slot(released))
        return released

    def reject(self, proposal: Proposal | int, reason: str = "") -> None:
        """Reject a waiting proposal: never measured; the agent proposes something else."""
        self._answer({"step": step_of(proposal), "action": "reject", "reason": reason}, reason)

    def _answer(self, payload: dict[str, Any], why: str) -> Proposal | None:
        self._check_open()
        step = self._ctx.store.counts()["decisions"]
        return self._loop.gate.answer(payload, step, who=os_user(), why=why)

    def _why_short(self, instrument: str) -> str:
        ctx, loop = self._ctx, self._loop
        state = loop.recorder.budget_state(loop.pending())
        cheapest = ctx.cheapest_cost(instrument)
        allowed = state.allows(ctx.spec.budget, cheapest)
        return why_short(ctx.spec, instrument, state, cheapest, allowed)

    def tell(
        self,
        proposal: Proposal | int | Measurement,
        signal: Any = None,
        *,
        cost: float | None = None,
        t_start: float | None = None,
        t_end: float | None = None,
    ) -> dict[str, float]:
        """Record the result of a proposal: the trace first, then the agent, fits and MLflow.

        Args:
            proposal: The proposal (or its step) that was measured; or a whole
                :class:`~coscope.types.Measurement` (then leave out the rest).
            signal: The full signal, shape ``(L,)`` of the proposal's modality, finite.
            cost: What it cost (default: the proposal's expected cost, the instrument's price).
            t_start: Unix time it started (default: when it was decided).
            t_end: Unix time it ended (default: now).

        Returns:
            The history row: step, reward (NaN for another modality than the target),
            best_so_far, cost_spent, n_measurements and, with ground truth, rmse/nrmse/mae.

        Raises:
            ProposalError: The step was never asked, is told already, or does not match.
            InstrumentError: The signal has the wrong length, is not numeric, or not finite.
        """
        self._check_open()
        self._take_posted()
        ctx, loop = self._ctx, self._loop
        step = step_of(proposal)
        if step in loop.gate.waiting:
            raise ProposalError(
                f"step {step} waits for approval: approve (or reject) it before telling its result."
            )
        pending = {p.step: p for p in loop.pending()}
        decision = pending_step(step, pending, ctx.store.measured_steps())
        info = ctx.store.modalities[decision.modality]
        measurement = told_measurement(decision, proposal, signal, info, cost, t_start, t_end)
        loop.recorder.measurement(measurement)  # durable before the agent learns of it
        queue = loop.inflight[decision.instrument]
        queue[:] = [s for s in queue if s.proposal.step != step]
        if not queue:
            del loop.inflight[decision.instrument]
        return loop.history[-1]

    def fail(self, proposal: Proposal | int, error: InstrumentError) -> bool:
        """Record that measuring a pending proposal failed, as ``coscope run`` records it.

        One ``failed_measurement`` row goes to the trace (and MLflow): step, instrument,
        modality, location, ``error.failure_class``, the reason, nothing charged
        (docs/faults-and-security.md). The proposal stays pending: measure it again and
        :meth:`tell` it, or close; a re-opened campaign (or ``coscope resume``) hands it back —
        unless the spec's failure policy retires it (a tolerant ``failures.max_rate``, or its
        ``retire_after``-th failure): then it is recorded ``retired`` and never handed back.

        Returns:
            Whether the failure policy retired the proposal.

        Raises:
            ProposalError: The step was never asked or is told already.
        """
        self._check_open()
        loop = self._loop
        step = step_of(proposal)
        pending = {p.step: p for p in loop.pending()}
        decision = pending_step(step, pending, self._ctx.store.measured_steps())
        verdict = loop.failures.judge(decision, error, loop.recorder.n_measured)
        loop.failures.record(self._ctx.store, self._ctx.tracker, decision, error, verdict.retire)
        if verdict.retire:
            loop.retired.append(decision)
            queue = loop.inflight.get(decision.instrument, [])
            queue[:] = [s for s in queue if s.proposal.step != step]
            if not queue:
                loop.inflight.pop(decision.instrument, None)
        return verdict.retire

    # --- closing ----------------------------------------------------------------------
    def outcome(self) -> LoopOutcome:
        """How the campaign stands, as the loop reports its end (for :func:`finish`)."""
        loop = self._loop
        n, spent = loop.recorder.n_measured, loop.recorder.spent
        status, reason = "stopped", f"closed from the Python API with {len(self.pending)} pending"
        if loop.steering.settings.stopped:
            reason = "stopped on request"
        elif self._used_up is not None and not loop.inflight:
            status, reason = "finished", self._why_short(self._used_up)
        return LoopOutcome(status, reason, n, spent, list(loop.history))

    def finish(self) -> dict[str, Any]:
        """Close as a finished ``coscope run`` does: final report and plots, MLflow artifacts,
        status; returns the same summary dict."""
        from coscope.flows.finish import finish_campaign

        self._check_open()
        self._closed = True
        return finish_campaign(self._ctx, self.outcome())

    def close(self) -> None:
        """Record the status, finish the MLflow run, release the trace (idempotent)."""
        if not self._closed:
            outcome = self.outcome()
            self._shut(outcome.status, outcome.reason)

    def _shut(self, status: str, reason: str) -> None:
        self._closed = True
        store = self._ctx.store
        try:
            store.set_attr("status", status)
            store.set_attr("finished_reason", reason)
        finally:
            self._ctx.tracker.finish(status)
            store.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(
                f"the campaign at '{self.store_path}' is closed: Campaign.open(store) it again."
            )

    def __enter__(self) -> Campaign:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None and not self._closed:
            self._shut("interrupted", f"{type(exc).__name__} in the caller's code")
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self.pending)} pending"
        n = self._loop.recorder.n_measured
        best = self._loop.recorder.best
        shown = f", best {best:.4g}" if math.isfinite(best) else ""
        return f"Campaign({self.spec.name!r}, {n} measured{shown}, {state}, '{self.store_path}')"
