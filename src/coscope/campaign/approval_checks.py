"""Validating an answer to a waiting decision, fully, before it is recorded.

The same checks run where the answer is posted (``coscope approve``, the Python API) and
again in the loop when it takes the answer: the step must wait; a modified location must be a
candidate of the campaign's space, on the sample and not measured or pending already; modified
params must be ones the instrument accepts, with valid values; and the modified request's
price must fit the cost budget with everything else committed. A bad answer is one sentence
(:class:`ApprovalError`) and changes nothing.

A request (the inbox payload) is ``{step, action: approve | reject, location?: [row, col],
params?: {...}, reason?}``; ``approve`` with a location or params is a modification.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from coscope.campaign.approval import Answer, GateState, gate_state
from coscope.config import CampaignSpec
from coscope.errors import ConfigError, InstrumentError
from coscope.instruments import Instrument, PriceQuery, Sample
from coscope.instruments.base import STAGE_FROM, check_params
from coscope.instruments.registry import build_base, instrument_pricing
from coscope.spaces import Space
from coscope.types import Intervention, Location, Measurement, Proposal

ACTIONS = ("approve", "reject")


class ApprovalError(ConfigError):
    """An answer that cannot be applied (one sentence; nothing is recorded)."""


@dataclass
class AnswerChecks:
    """What an answer is checked against: the campaign and its trace as they are now.

    Attributes:
        spec: The campaign's effective spec (costs as steered).
        sample: The sample (its grid; the instruments' base is built from it for prices).
        space: The candidate space (None: every pixel of the grid).
        decisions: Every stored decision, step order.
        measurements: Every stored measurement.
        interventions: Every intervention row (the answers among them).
    """

    spec: CampaignSpec
    sample: Sample
    space: Space | None
    decisions: Sequence[Proposal]
    measurements: Sequence[Measurement]
    interventions: Sequence[Intervention]
    _bases: dict[str, Instrument] = field(default_factory=dict, repr=False)

    @property
    def state(self) -> GateState:
        measured = {m.step for m in self.measurements}
        return gate_state(self.spec, self.decisions, measured, self.interventions)

    def check(self, payload: Mapping[str, Any]) -> Answer:
        """The answer ``payload`` asks for, or :class:`ApprovalError` (one sentence)."""
        state = self.state
        waiting = {p.step: p for p in state.waiting}
        step = _step(payload.get("step"))
        action = payload.get("action")
        if action not in ACTIONS:
            raise ApprovalError(f"action must be approve or reject; got {action!r}.")
        if step not in waiting:
            listed = ", ".join(str(s) for s in waiting) or "none"
            raise ApprovalError(
                f"step {step} does not wait for an answer (waiting steps: {listed}); list them "
                "with `coscope approve STORE`."
            )
        proposal = waiting[step]
        unknown = sorted(set(payload) - {"step", "action", "location", "params", "reason"})
        if unknown:
            raise ApprovalError(
                f"an answer takes step, action, location, params, reason; not {unknown}."
            )
        if action == "reject":
            if "location" in payload or "params" in payload:
                raise ApprovalError("a rejection takes a reason, not a location or params.")
            return Answer(step, "rejected", reason=str(payload.get("reason", ""))[:500])
        if payload.get("location") is None and payload.get("params") is None:
            return Answer(step, "approved")
        return self._modified(proposal, payload, state)

    def _modified(self, proposal: Proposal, payload: Mapping[str, Any], state: GateState) -> Answer:
        location = proposal.location
        if payload.get("location") is not None:
            location = self._location(payload["location"], proposal, state)
        params = dict(proposal.params)
        if payload.get("params") is not None:
            extra = payload["params"]
            if not isinstance(extra, dict):
                raise ApprovalError(f"params must be an object of name: value; got {extra!r}.")
            params.update(extra)
        base = self._base(proposal.instrument)
        try:
            check_params(base, params)
            price = self._price(proposal, location, params, state)
        except InstrumentError as exc:
            raise ApprovalError(f"the modified request for step {proposal.step}: {exc}") from None
        budget = self.spec.budget
        if budget.max_cost is not None:
            rest = self._committed(state) - proposal.expected_cost
            if rest + price > budget.max_cost + 1e-9:
                raise ApprovalError(
                    f"the modified request costs {price:g}, and with {rest:g} spent or committed "
                    f"it exceeds the cost budget {budget.max_cost:g}; choose a cheaper location "
                    "or params, or approve it as it is."
                )
        return Answer(proposal.step, "modified", location, params, price)

    def _location(self, raw: Any, proposal: Proposal, state: GateState) -> Location:
        try:
            row, col = (int(v) for v in raw)
        except (TypeError, ValueError, OverflowError):
            raise ApprovalError(f"location must be [row, col]; got {raw!r}.") from None
        location = Location(row, col)
        h, w = self.sample.shape
        if not (0 <= row < h and 0 <= col < w):
            raise ApprovalError(
                f"location ({row}, {col}) is off the {h} x {w} sample: rows 0..{h - 1}, "
                f"columns 0..{w - 1}."
            )
        if self.space is not None:
            try:
                self.space.check(location, f"the modified location ({row}, {col})")
            except ConfigError as exc:  # SpaceError: its sentence names the fix
                raise ApprovalError(str(exc)) from None
        if (proposal.modality, location) in self._taken(proposal.step, state):
            raise ApprovalError(
                f"{proposal.modality} at ({row}, {col}) is measured or pending already; "
                "choose another location."
            )
        return location

    def _taken(self, step: int, state: GateState) -> set[tuple[str, Location]]:
        """(modality, location) measured, in flight or waiting, other than decision ``step``."""
        taken = {(m.modality, m.location) for m in self.measurements}
        dropped = {p.step for p in state.dropped}
        measured = {m.step for m in self.measurements}
        for decision in self.decisions:
            if decision.step not in dropped | measured | {step}:
                current = state.as_measured(decision)
                taken.add((current.modality, current.location))
        return taken

    def _committed(self, state: GateState) -> float:
        """Cost spent plus the expected cost of every decision still to be measured."""
        measured = {m.step for m in self.measurements}
        dropped = {p.step for p in state.dropped}
        pending = [
            state.as_measured(d).expected_cost
            for d in self.decisions
            if d.step not in measured | dropped
        ]
        return float(sum(m.cost for m in self.measurements) + sum(pending))

    def _base(self, name: str) -> Instrument:
        if name not in self._bases:
            inst = next(i for i in self.spec.instruments if i.name == name)
            self._bases[name] = build_base(
                inst.name, self.sample, kind=inst.kind, modalities=inst.modalities,
                options=inst.options,
            )  # fmt: skip
        return self._bases[name]

    def _price(
        self, proposal: Proposal, location: Location, params: dict[str, Any], state: GateState
    ) -> float:
        """The price of the modified request; the stage comes from the instrument's previous
        decision (as measured)."""
        inst = next(i for i in self.spec.instruments if i.name == proposal.instrument)
        pricing = instrument_pricing(
            self._base(inst.name), self.sample, inst.cost, inst.travel_cost_per_um
        )
        query = dict(params)
        earlier = [
            d for d in self.decisions if d.instrument == inst.name and d.step < proposal.step
        ]
        if earlier and pricing.travel_cost_per_um and STAGE_FROM not in query:
            origin = state.as_measured(earlier[-1]).location
            query[STAGE_FROM] = [origin.row, origin.col]
        return float(pricing.price(PriceQuery(inst.name, proposal.modality, location, query)))


def _step(raw: Any) -> int:
    whole = isinstance(raw, int) or (isinstance(raw, float) and raw.is_integer())
    if isinstance(raw, bool) or raw is None or not whole:
        raise ApprovalError("an answer names the waiting step it answers: --step N.")
    return int(raw)
