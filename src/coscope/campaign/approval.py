"""The approval gate's records: what waits for a person, and the answers, read from the trace.

Under ``approval: {required: true}`` every decision of a gated instrument is stored in the
trace as usual (so a crash loses nothing) but not measured until a person answers it. An
answer is one ``approval`` row in the trace's interventions table, payload:

==========  ==============================================================================
step        the decision it answers
answer      ``approved`` | ``modified`` | ``rejected`` | ``timed_out``
location    modified: ``[row, col]`` measured instead of the agent's location
params      modified: the request params measured instead of the agent's
expected    modified: the price of the modified request (what the budget counts)
reason      rejected: why (free text)
on_timeout  timed_out: ``skip`` (dropped) or ``stop`` (the campaign stopped; still waits)
==========  ==============================================================================

``approved`` and ``modified`` release the decision to its instrument; ``rejected`` and a
``skip`` timeout drop it: it is never measured, and the agent keeps seeing it as pending
(``Ask.pending``), so that it is not proposed again and the agent decides anew. A request
that was refused (the step was not waiting, the location is no candidate …) is recorded
too, with ``"rejected": why`` in its payload, and changes nothing. Every reader (the loop
on resume, ``coscope approve``, status, check, replay) folds the same rows with
:func:`gate_state`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from coscope.config import CampaignSpec
from coscope.types import Intervention, Location, Proposal

APPROVAL = "approval"
"""Kind of an answer: the inbox request and its row in the trace's interventions table."""
REFUSED = "rejected"
"""Payload key of a refused answer (the reason), as for interventions."""
AnswerKind = Literal["approved", "modified", "rejected", "timed_out"]
ANSWERS: tuple[str, ...] = ("approved", "modified", "rejected", "timed_out")


@dataclass(frozen=True)
class Answer:
    """A person's (or the timeout's) answer to one waiting decision.

    Attributes:
        step: The decision answered.
        answer: ``approved``, ``modified``, ``rejected`` or ``timed_out``.
        location: Modified: where to measure instead.
        params: Modified: the request params instead of the agent's.
        expected_cost: Modified: the price of the modified request (cost units).
        reason: Why (rejections; free text).
        on_timeout: Timed out: ``skip`` or ``stop``.
        applied_at: The next decision step when it was recorded (-1 not yet recorded).
    """

    step: int
    answer: AnswerKind
    location: Location | None = None
    params: dict[str, Any] | None = None
    expected_cost: float | None = None
    reason: str = ""
    on_timeout: str = ""
    applied_at: int = -1

    @property
    def releases(self) -> bool:
        """The decision is measured (approved as it is or modified)."""
        return self.answer in ("approved", "modified")

    @property
    def drops(self) -> bool:
        """The decision is never measured (rejected, or skipped at its timeout)."""
        return self.answer == "rejected" or (
            self.answer == "timed_out" and self.on_timeout == "skip"
        )

    def payload(self) -> dict[str, Any]:
        """The JSON payload of its trace row (see the module docstring)."""
        out: dict[str, Any] = {"step": int(self.step), "answer": self.answer}
        if self.location is not None:
            out["location"] = [int(self.location.row), int(self.location.col)]
        if self.params is not None:
            out["params"] = dict(self.params)
        if self.expected_cost is not None:
            out["expected"] = float(self.expected_cost)
        if self.reason:
            out["reason"] = self.reason
        if self.on_timeout:
            out["on_timeout"] = self.on_timeout
        return out

    @classmethod
    def from_record(cls, item: Intervention) -> Answer | None:
        """The answer a trace row holds; None for another kind or a refused request."""
        p = item.payload
        if item.kind != APPROVAL or REFUSED in p or p.get("answer") not in ANSWERS:
            return None
        try:
            loc = p.get("location")
            return cls(
                step=int(p["step"]),
                answer=p["answer"],
                location=None if loc is None else Location(int(loc[0]), int(loc[1])),
                params=None if p.get("params") is None else dict(p["params"]),
                expected_cost=None if p.get("expected") is None else float(p["expected"]),
                reason=str(p.get("reason", "")),
                on_timeout=str(p.get("on_timeout", "")),
                applied_at=int(item.step),
            )
        except (KeyError, TypeError, ValueError, IndexError):
            return None  # a damaged row answers nothing (`coscope check` names it)

    def applied_to(self, proposal: Proposal) -> Proposal:
        """``proposal`` as it is measured under this answer (modified: location, params, cost)."""
        if self.answer != "modified":
            return proposal
        return replace(
            proposal,
            location=self.location or proposal.location,
            params=dict(self.params) if self.params is not None else dict(proposal.params),
            expected_cost=(
                proposal.expected_cost if self.expected_cost is None else self.expected_cost
            ),
        )


def gated(spec: CampaignSpec, instrument: str) -> bool:
    """Whether proposals for ``instrument`` wait for an answer under ``spec``."""
    gate = spec.approval
    return gate.required and (not gate.instruments or instrument in gate.instruments)


def answers_of(interventions: Iterable[Intervention]) -> dict[int, Answer]:
    """The deciding answer per step: the first that releases or drops it (later ones were
    refused when they arrived); a ``stop`` timeout decides nothing."""
    out: dict[int, Answer] = {}
    for item in interventions:
        answer = Answer.from_record(item)
        if answer is not None and answer.step not in out and (answer.releases or answer.drops):
            out[answer.step] = answer
    return out


@dataclass(frozen=True)
class GateState:
    """The gate as the trace leaves it.

    Attributes:
        answers: The deciding answer per answered step.
        waiting: Decisions that wait for an answer (gated, unmeasured, unanswered), step order.
        dropped: Decisions rejected or skipped (never measured), step order.
        history: Every recorded answer in trace order (``stop`` timeouts included).
        refused: Answers refused when they arrived (recorded, changed nothing).
    """

    answers: dict[int, Answer] = field(default_factory=dict)
    waiting: tuple[Proposal, ...] = ()
    dropped: tuple[Proposal, ...] = ()
    history: tuple[Answer, ...] = ()
    refused: int = 0

    def as_measured(self, proposal: Proposal, before: int | None = None) -> Proposal:
        """``proposal`` as released (modified ones changed); ``before``: only by answers
        recorded before decision step ``before`` (what a decision then knew)."""
        answer = self.answers.get(proposal.step)
        if answer is None or (before is not None and answer.applied_at > before):
            return proposal
        return answer.applied_to(proposal)


def gate_state(
    spec: CampaignSpec,
    decisions: Sequence[Proposal],
    measured: set[int],
    interventions: Iterable[Intervention],
) -> GateState:
    """Fold the trace's answers over its decisions (see the module docstring)."""
    items = list(interventions)
    answers = answers_of(items)
    history = tuple(a for a in map(Answer.from_record, items) if a is not None)
    refused = sum(i.kind == APPROVAL and REFUSED in i.payload for i in items)
    waiting, dropped = [], []
    for decision in decisions:
        answer = answers.get(decision.step)
        if answer is not None and answer.drops:
            dropped.append(decision)
        elif answer is None and decision.step not in measured and gated(spec, decision.instrument):
            waiting.append(decision)
    return GateState(answers, tuple(waiting), tuple(dropped), history, refused)


def describe_waiting(proposal: Proposal, waited_s: float | None = None) -> str:
    """One line of ``coscope approve``'s listing: what waits, where, at what price, and why."""
    loc = proposal.location
    why = proposal.policy
    if proposal.score == proposal.score:  # not NaN (random and seed points have none)
        why += f" score {proposal.score:.4g}"
    if proposal.predicted_mean == proposal.predicted_mean:  # not NaN
        why += f", predicted {proposal.predicted_mean:.4g} ± {proposal.predicted_std:.3g}"
    params = f"  params {dict(proposal.params)}" if proposal.params else ""
    waited = "" if waited_s is None else f"  waiting {waited_s:.0f} s"
    return (
        f"step {proposal.step:>4}  {proposal.instrument:<10} {proposal.modality:<12} "
        f"at ({loc.row}, {loc.col})  price {proposal.expected_cost:g}  [{why}]{params}{waited}"
    )


def approval_summary(state: GateState, spec: CampaignSpec) -> dict[str, Any]:
    """The ``approval`` block of ``coscope status``."""
    counts = dict.fromkeys(ANSWERS, 0)
    for answer in state.history:
        counts[answer.answer] += 1
    return {
        "required": spec.approval.required,
        "instruments": list(spec.approval.instruments),
        "timeout_s": spec.approval.timeout_s,
        "on_timeout": spec.approval.on_timeout,
        "waiting": [
            {
                "step": p.step,
                "instrument": p.instrument,
                "modality": p.modality,
                "location": [p.location.row, p.location.col],
                "price": p.expected_cost,
                "policy": p.policy,
                "score": p.score,
            }
            for p in state.waiting
        ],
        "answers": counts,
        "refused": state.refused,
        "dropped": [p.step for p in state.dropped],
    }


def answer_record(answer: Answer, next_step: int, who: str, why: str, t: float) -> Intervention:
    """The trace row of ``answer``, recorded before decision ``next_step``."""
    return Intervention(
        kind=APPROVAL, payload=answer.payload(), step=int(next_step), who=who, why=why, t=t
    )


def refused_record(
    payload: Mapping[str, Any], reason: str, next_step: int, who: str, why: str, t: float
) -> Intervention:
    """The trace row of an answer that was refused (it changed nothing)."""
    kept = {k: payload[k] for k in ("step", "action", "location", "params") if k in payload}
    return Intervention(
        kind=APPROVAL, payload={**kept, REFUSED: reason}, step=int(next_step), who=who,
        why=why, t=t,
    )  # fmt: skip
