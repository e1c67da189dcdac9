"""What the Python API checks and says: a told result against its decision, why ``ask`` is short.

Every problem is one sentence (a :class:`~coscope.errors.CoscopeError`) naming what is wrong
and what to do; nothing is written to the trace before these checks pass.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from coscope.campaign.decide import BudgetState
from coscope.config import CampaignSpec
from coscope.errors import ConfigError, InstrumentError, ProposalError
from coscope.types import Measurement, ModalityInfo, Proposal


class Proposals(list[Proposal]):
    """The proposals one ``ask`` returns, with :attr:`reason`: why there are fewer than asked
    for (empty when every instrument asked got its ``n``)."""

    def __init__(self, items: Sequence[Proposal] = (), reason: str = "") -> None:
        super().__init__(items)
        self.reason = reason


def known_instrument(spec: CampaignSpec, active: Sequence[str], name: str) -> str:
    """``name`` if the campaign asks that instrument for proposals, else a ConfigError."""
    names = [i.name for i in spec.instruments]
    if name not in names:
        raise ConfigError(
            f"unknown instrument {name!r}: this campaign's instruments are {', '.join(names)}."
        )
    if name not in active:
        raise ConfigError(
            f"instrument {name!r} offers no modality policy '{spec.policy.name}' proposes; "
            f"ask one of {', '.join(active)}."
        )
    return name


def step_of(told: object) -> int:
    """The step a ``tell`` names: a Proposal's or Measurement's, or a whole number."""
    if isinstance(told, Proposal | Measurement):
        return told.step
    if isinstance(told, int | np.integer) and not isinstance(told, bool):
        return int(told)
    raise ProposalError(
        f"tell takes a Proposal, its step or a Measurement, not {type(told).__name__}."
    )


def pending_step(step: int, pending: dict[int, Proposal], measured: set[int]) -> Proposal:
    """The pending decision of ``step``, or a ProposalError saying why there is none."""
    if step in pending:
        return pending[step]
    if step in measured:
        raise ProposalError(f"step {step} is already told: a step is measured only once.")
    waiting = ", ".join(str(s) for s in sorted(pending)) or "none"
    raise ProposalError(
        f"step {step} was never asked: tell a step that ask returned (pending: {waiting})."
    )


def as_signal(step: int, signal: object, info: ModalityInfo) -> np.ndarray:
    """``signal`` as the finite float64 ``(L,)`` array of ``info``'s modality, or an error."""
    try:
        array = np.asarray(signal, dtype=np.float64)
    except (TypeError, ValueError):
        raise InstrumentError(
            f"the signal told for step {step} is not numeric: tell an array of "
            f"{info.length} numbers."
        ) from None
    if array.shape != (info.length,):
        raise InstrumentError(
            f"the signal told for step {step} has shape {array.shape}, but '{info.name}' "
            f"signals have {info.length} values: tell the whole signal, shape ({info.length},)."
        )
    if not np.all(np.isfinite(array)):
        raise InstrumentError(
            f"the signal told for step {step} contains NaN or inf: tell finite values only."
        )
    return array


def matches(measurement: Measurement, decision: Proposal) -> None:
    """A ProposalError when a told measurement is not of its decision's instrument, modality
    and location."""
    fields = {
        "instrument": (measurement.instrument, decision.instrument),
        "modality": (measurement.modality, decision.modality),
        "location": (measurement.location, decision.location),
    }
    for what, (told, asked) in fields.items():
        if told != asked:
            raise ProposalError(
                f"the measurement told for step {decision.step} has {what} {told!r}, but step "
                f"{decision.step} asked for {asked!r}: tell what was asked."
            )


def told_measurement(
    decision: Proposal,
    told: Proposal | int | Measurement,
    signal: object,
    info: ModalityInfo,
    cost: float | None,
    t_start: float | None,
    t_end: float | None,
) -> Measurement:
    """The checked measurement of ``decision`` from what was told (see ``Campaign.tell``).

    Raises:
        ProposalError: A told :class:`~coscope.types.Measurement` does not match its decision.
        InstrumentError: The signal is not a finite ``(L,)`` array of the modality.
    """
    if isinstance(told, Measurement):
        matches(told, decision)
        as_signal(decision.step, told.signal, info)
        return told
    return Measurement(
        step=decision.step,
        instrument=decision.instrument,
        modality=decision.modality,
        location=decision.location,
        signal=as_signal(decision.step, signal, info),
        cost=float(decision.expected_cost if cost is None else cost),
        t_start=float(decision.t_decided if t_start is None else t_start),
        t_end=float(time.time() if t_end is None else t_end),
    )


def why_short(
    spec: CampaignSpec, instrument: str, state: BudgetState, cheapest: float, budget_ok: bool
) -> str:
    """One sentence: why ``instrument`` got no (more) proposal.

    Args:
        spec: The campaign's current spec (its budget and policy).
        instrument: The instrument asked.
        state: Budget used and committed (pending proposals included).
        cheapest: The cheapest request it could get.
        budget_ok: Whether the budget allowed that request (else the agent was not asked).
    """
    budget = spec.budget
    if budget_ok:
        return (
            f"policy '{spec.policy.name}' proposes nothing more for '{instrument}': every "
            "candidate is measured or pending, or the best one costs more than the budget left."
        )
    pending = f"; tell the {state.n_inflight} pending proposal(s) first" if state.n_inflight else ""
    if budget.max_measurements is not None and state.n_committed >= budget.max_measurements:
        return (
            f"the measurement budget is used up ({state.n_measured} measured and "
            f"{state.n_inflight} pending of {budget.max_measurements}){pending}; re-create the "
            "campaign with a larger budget.max_measurements to continue."
        )
    return (
        f"the cost budget has no room for '{instrument}' (spent {state.spent:g}, pending "
        f"{state.inflight_cost:g}, cheapest request {cheapest:g}, budget {budget.max_cost:g})"
        f"{pending}; re-create the campaign with a larger budget.max_cost to continue."
    )
