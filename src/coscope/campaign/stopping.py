"""The stopping rule: end a campaign before its budget when the policy expects little more.

The spec's ``stopping`` (:class:`~coscope.config.StoppingSpec`) watches the policy's decisions
(not seed or random picks): ``ei_below`` reads a decision's expected improvement (``exp`` of
its log-EI score, target units), ``std_below`` its posterior std at the chosen point. After
``patience`` such decisions in a row below ``threshold`` — and at least ``min_measurements``
decisions in all — the rule fires: the loop decides nothing more, measures what is in flight,
and finishes with the reason (``"stopped early: expected improvement below 0.01 for 5
decisions in a row (step 23)"``).

When it fires the loop appends one ``early_stop`` row to the trace's interventions table
(payload: ``rule``, ``threshold``, ``patience``, ``step``, ``values`` of the last
``patience`` decisions, ``reason``; ``who`` ``coscope``). The watch is rebuilt from the
trace's decisions and that row, so a resumed campaign that stopped early decides nothing
more, and one that had not yet stopped counts on from where it was. Steering ignores the
kind (it changes no setting); a coscope without this rule cannot read the spec of such a
campaign (``stopping`` is not a field it knows) and so refuses to resume it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

from coscope.config import StoppingSpec
from coscope.types import Intervention, Proposal

EARLY_STOP = "early_stop"
SEEDING = frozenset({"seed", "random"})
"""Decision policies that are not the policy's choice (the rule skips them)."""
_WHAT = {"ei_below": "expected improvement", "std_below": "posterior std"}


def decision_value(rule: str, proposal: Proposal) -> float:
    """The value the ``rule`` reads from one decision (NaN when it has none)."""
    if proposal.policy in SEEDING:
        return math.nan
    if rule == "ei_below":
        return math.exp(proposal.score) if math.isfinite(proposal.score) else math.nan
    return float(proposal.predicted_std)


class StopWatch:
    """Counts the policy's decisions below the threshold (see the module docstring).

    Args:
        spec: The spec's ``stopping`` (None: never fires).
        decisions: Stored decisions, step order.
        records: The trace's interventions (an ``early_stop`` row means it fired).
    """

    def __init__(
        self,
        spec: StoppingSpec | None,
        decisions: Iterable[Proposal] = (),
        records: Iterable[Intervention] = (),
    ) -> None:
        self.spec = spec
        self.below: list[float] = []
        self.n_decisions = 0
        self.fired: dict[str, Any] | None = next(
            (dict(r.payload) for r in records if r.kind == EARLY_STOP), None
        )
        for proposal in decisions:
            self.observe(proposal)

    @property
    def stopped(self) -> bool:
        """Whether the rule has fired (in this run or a run before)."""
        return self.fired is not None

    @property
    def reason(self) -> str:
        """Why it stopped (empty before it fired)."""
        return str(self.fired.get("reason", "")) if self.fired else ""

    def observe(self, proposal: Proposal) -> bool:
        """Count one stored decision; True when the rule fires on it (only once)."""
        self.n_decisions += 1
        spec = self.spec
        if spec is None or self.stopped:
            return False
        value = decision_value(spec.rule, proposal)
        if math.isnan(value):
            return False
        self.below = self.below + [value] if value < spec.threshold else []
        if len(self.below) < spec.patience or self.n_decisions < spec.min_measurements:
            return False
        what = _WHAT[spec.rule]
        self.fired = {
            "rule": spec.rule,
            "threshold": spec.threshold,
            "patience": spec.patience,
            "step": int(proposal.step),
            "values": [float(v) for v in self.below[-spec.patience :]],
            "reason": f"stopped early: {what} below {spec.threshold:g} for {spec.patience} "
            f"decisions in a row (step {proposal.step})",
        }
        return True

    def record(self, next_step: int) -> Intervention:
        """The trace row of the fired rule, recorded before ``next_step``."""
        assert self.fired is not None
        return Intervention(
            kind=EARLY_STOP,
            payload=dict(self.fired),
            step=int(next_step),
            who="coscope",
            why=self.reason,
            t=time.time(),
        )
