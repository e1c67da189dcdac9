"""The loop's approval gate: gated decisions wait for an answer before they are measured.

:class:`ApprovalGate` holds the decisions of gated instruments (``approval`` in the spec,
:func:`~coscope.campaign.approval.gated`) once the loop has stored them, takes the answers
from the inbox (validated again, :mod:`.approval_checks`; recorded in the trace and logged to
the tracker either way) and applies the timeout policy with an injectable ``clock``:

- ``wait``: a decision waits until it is answered;
- ``skip``: past ``timeout_s`` it is dropped (a ``timed_out`` row, ``on_timeout: skip``); the
  agent decides again, seeing it as pending so that it proposes something else;
- ``stop``: past ``timeout_s`` a ``timed_out`` row (``on_timeout: stop``) is recorded and the
  loop stops as on a stop request; the decision still waits, and ``coscope resume`` waits for
  it again (its timeout counts from the resume).

On resume :meth:`restore` sorts the stored, unmeasured decisions: answered ones are issued as
answered (modified ones changed), dropped ones stay dropped, unanswered gated ones wait again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from coscope.campaign.approval import (
    APPROVAL,
    Answer,
    answer_record,
    gate_state,
    gated,
    refused_record,
)
from coscope.campaign.approval_checks import AnswerChecks, ApprovalError
from coscope.campaign.context import CampaignContext
from coscope.campaign.queues import Slot
from coscope.errors import CoscopeError
from coscope.types import Intervention, Proposal

log = logging.getLogger(__name__)

__all__ = ["APPROVAL", "ApprovalGate"]


class ApprovalGate:
    """Decisions waiting for a person, as the loop runs (see the module docstring).

    Args:
        ctx: The wired campaign.
        clock: Seconds, monotonic (tests drive it; default :func:`time.monotonic`).
    """

    def __init__(self, ctx: CampaignContext, clock: Callable[[], float] = time.monotonic) -> None:
        self.ctx = ctx
        self.clock = clock
        self.waiting: dict[int, Proposal] = {}
        """Step -> the decision waiting for an answer."""
        self.dropped: list[Proposal] = []
        """Rejected or skipped decisions, step order: the agent sees them as pending."""
        self.stop_reason = ""
        """Set when a ``stop`` timeout stopped the campaign."""
        self._since: dict[int, float] = {}

    def applies(self, instrument: str) -> bool:
        """Whether decisions for ``instrument`` wait (the spec as steered now)."""
        return gated(self.ctx.spec, instrument)

    def hold(self, proposal: Proposal) -> None:
        """Keep a stored decision until it is answered; its timeout starts now."""
        self.waiting[proposal.step] = proposal
        self._since[proposal.step] = self.clock()
        log.warning(
            "step %d on %s waits for approval: coscope approve %s --step %d",
            proposal.step, proposal.instrument, self.ctx.store.path, proposal.step,
        )  # fmt: skip

    def n_waiting(self, instrument: str) -> int:
        """Decisions of ``instrument`` waiting for an answer."""
        return sum(p.instrument == instrument for p in self.waiting.values())

    def restore(self, slots: list[Slot]) -> list[Slot]:
        """The resume's slots with the trace's answers applied; unanswered gated ones wait."""
        store = self.ctx.store
        state = gate_state(
            self.ctx.spec, store.decisions(), store.measured_steps(), store.interventions()
        )
        self.dropped = list(state.dropped)
        waits = {p.step for p in state.waiting}
        drops = {p.step for p in state.dropped}
        out = []
        for slot in slots:
            step = slot.proposal.step
            if step in waits and slot.stored is None:
                self.hold(slot.proposal)
            elif step not in drops:
                out.append(Slot(state.as_measured(slot.proposal), slot.handle, slot.stored))
        return out

    def take(self, item: Intervention, step: int) -> Proposal | None:
        """Validate and record an answer from the inbox as of decision ``step``.

        Returns:
            The decision to measure (as answered) when it is released, else None (rejected,
            or the answer was refused: recorded with ``rejected`` and nothing changed).
        """
        try:
            return self.answer(item.payload, step, who=item.who, why=item.why)
        except CoscopeError as exc:  # an instrument's or a space's sentence too
            log.warning("answer refused: %s", exc)
            self._record(refused_record(item.payload, str(exc), step, item.who, item.why, item.t))
            return None

    def answer(self, payload: dict[str, Any], step: int, *, who: str, why: str) -> Proposal | None:
        """Validate and record an answer ``{step, action, location?, params?, reason?}``.

        Returns:
            The decision to measure (as answered), or None when it was rejected.

        Raises:
            ApprovalError: The answer is invalid now (one sentence; nothing recorded).
        """
        ctx = self.ctx
        store = ctx.store
        checks = AnswerChecks(
            ctx.spec, ctx.sample, ctx.space, store.decisions(), store.measurements(),
            store.interventions(),
        )  # fmt: skip
        answer = checks.check(payload)
        if answer.step not in self.waiting:  # stored as waiting, but not held by this run
            raise ApprovalError(f"step {answer.step} does not wait in this run.")
        return self._answer(answer, step, who, why)

    def _answer(self, answer: Answer, step: int, who: str, why: str) -> Proposal | None:
        self._record(answer_record(answer, step, who, why, time.time()))
        proposal = self.waiting.pop(answer.step)
        self._since.pop(answer.step, None)
        if answer.drops:
            self.dropped.append(proposal)
            self.dropped.sort(key=lambda p: p.step)
            return None
        return answer.applied_to(proposal) if answer.releases else None

    def _record(self, item: Intervention) -> None:
        """The trace first, then the tracker, written at once (answers come at human pace,
        and MLflow must hold each one even if the campaign is killed right after)."""
        self.ctx.store.append_intervention(item)
        self.ctx.tracker.log_intervention(item)
        self.ctx.tracker.flush()

    def seconds_left(self) -> float | None:
        """Seconds until the first waiting decision times out (None: no timeout applies)."""
        timeout = self.ctx.spec.approval.timeout_s
        if timeout is None or self.ctx.spec.approval.on_timeout == "wait" or not self.waiting:
            return None
        now = self.clock()
        return max(0.0, min(self._since[s] + timeout - now for s in self.waiting))

    def expire(self, step: int) -> bool:
        """Apply the timeout policy to the decisions past their timeout; True: stop now."""
        left = self.seconds_left()
        if left is None or left > 0:
            return False
        timeout = float(self.ctx.spec.approval.timeout_s or 0.0)
        policy = self.ctx.spec.approval.on_timeout
        now = self.clock()
        for waiting_step in sorted(self.waiting):
            if now - self._since[waiting_step] < timeout:
                continue
            answer = Answer(waiting_step, "timed_out", on_timeout=policy)
            why = f"no answer within {timeout:g} s ({policy})"
            if policy == "skip":
                self._answer(answer, step, "coscope", why)
                continue
            self._record(answer_record(answer, step, "coscope", why, time.time()))
            self.stop_reason = (
                f"step {waiting_step} waited {timeout:g} s for approval; stopped (resume waits "
                "for it again)"
            )
            return True
        return False
