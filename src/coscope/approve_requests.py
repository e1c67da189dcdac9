"""Answer a decision waiting for approval from another process (``coscope approve | reject``).

As for interventions (:mod:`coscope.steer_requests`) the answer is validated twice: here,
against the trace as it is now (the step waits, a modified location is a candidate of the
space, modified params are ones the instrument accepts, the modified price fits the budget),
so a bad answer is one sentence and nothing is posted; and again in the loop when it takes it.
The answer itself goes to the campaign's inbox, signed with its token (:mod:`.campaign.auth`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coscope.campaign.approval import APPROVAL, Answer, GateState, approval_summary, gate_state
from coscope.campaign.approval_checks import AnswerChecks, ApprovalError
from coscope.campaign.inbox import Inbox
from coscope.campaign.live import stored_settings
from coscope.campaign.steering import effective_spec
from coscope.config import CampaignSpec, parse_spec
from coscope.errors import ConfigError
from coscope.instruments import build_sample
from coscope.spaces import space_from_description
from coscope.storage import TraceStore


def stored_spec(store: TraceStore) -> CampaignSpec:
    """The campaign's spec as steered now (costs changed by interventions included)."""
    spec = parse_spec(store.effective_campaign())
    return effective_spec(spec, stored_settings(store, spec))


def stored_gate(store: TraceStore) -> tuple[CampaignSpec, GateState]:
    """The spec and the gate as the trace leaves them (what waits, what was answered)."""
    spec = stored_spec(store)
    state = gate_state(spec, store.decisions(), store.measured_steps(), store.interventions())
    return spec, state


def answer_checks(store: TraceStore) -> AnswerChecks:
    """The checks an answer to this campaign must pass now (builds its sample and space)."""
    spec = stored_spec(store)
    sample = build_sample(spec.sample.kind, dict(spec.sample.params), spec.seed)
    described = store.get_attr("space", None)
    space = space_from_description(described) if described else None
    return AnswerChecks(
        spec, sample, space, store.decisions(), store.measurements(), store.interventions()
    )


def post_answer(
    store_path: str | Path, payload: dict[str, Any], *, why: str = "", who: str | None = None
) -> tuple[Path, Answer]:
    """Validate an answer ``{step, action, location?, params?, reason?}`` and post it.

    Returns:
        ``(request file, the answer as the loop will record it)``.

    Raises:
        StoreError: No trace at ``store_path``.
        ApprovalError: The answer is invalid now (one sentence; nothing posted).
        ConfigError: The campaign's token cannot be read by this user.
    """
    store = TraceStore.open(store_path, mode="r")
    inbox = Inbox(store.path)
    step = payload.get("step")
    if any(i.kind == APPROVAL and i.payload.get("step") == step for i in inbox.peek()):
        raise ApprovalError(
            f"step {step} has an answer in the inbox already; the campaign takes it before "
            "its next decision."
        )
    answer = answer_checks(store).check(payload)
    path = inbox.post(APPROVAL, payload, why=why, who=who)
    return path, answer


def parse_location(text: str | None) -> list[int] | None:
    """``"R,C"`` as ``[R, C]`` (None when not given)."""
    if text is None:
        return None
    try:
        row, col = (int(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(
            f"--location {text!r} is not ROW,COL; write e.g. --location 3,7."
        ) from None
    return [row, col]


def describe_answer(answer: Answer) -> str:
    """A few words: what the answer does."""
    if answer.answer == "modified":
        where = answer.location
        loc = f"at ({where.row}, {where.col})" if where is not None else ""
        return f"modified {loc} params {answer.params} price {answer.expected_cost:g}".strip()
    if answer.answer == "rejected":
        return "rejected" + (f": {answer.reason}" if answer.reason else "")
    return answer.answer


def approval_status(store: TraceStore) -> dict[str, Any] | None:
    """The ``approval`` block of ``coscope status`` (None when the spec no longer parses)."""
    try:
        spec, state = stored_gate(store)
    except ConfigError:
        return None
    return approval_summary(state, spec)
