"""Outcome constraints and learned feasibility of a campaign, from its spec and its trace.

:func:`constraints_of` turns the spec's ``constraints:`` into the agent's
:class:`~coscope.agents.protocols.OutcomeConstraints`; :func:`feasibility_summary` is what
``coscope status`` reports of them: how many measurements violate each constraint and how
many decisions were learned infeasible (retired failures); :func:`stopping_status` the
stopping rule and why it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from coscope.agents.protocols import OutcomeConstraints, Reducer, reducers_of
from coscope.campaign.stopping import EARLY_STOP
from coscope.config import CampaignSpec, ConstraintSpec, parse_spec
from coscope.errors import CoscopeError
from coscope.scalarizers import SCALARIZERS
from coscope.types import Intervention, Measurement


def constraints_of(
    spec: CampaignSpec, axis_of: Callable[[str], np.ndarray]
) -> OutcomeConstraints | None:
    """The spec's outcome constraints (``None`` without any); ``axis_of`` gives a modality's
    signal axis (the sample's, or the trace's)."""
    if not spec.constraints:
        return None
    modality, names, values = reducers_of(spec.constraints, axis_of)
    return OutcomeConstraints(
        modality=modality,
        names=names,
        values=values,
        lower=tuple(c.value if c.op == ">=" else None for c in spec.constraints),
        upper=tuple(c.value if c.op == "<=" else None for c in spec.constraints),
    )


def describe(constraint: ConstraintSpec) -> str:
    """``loop_height >= 0.5``."""
    return f"{constraint.name} {constraint.op} {constraint.value:g}"


def violations(
    constraints: Sequence[ConstraintSpec],
    measurements: Iterable[Measurement],
    axis_of: Callable[[str], np.ndarray],
) -> list[dict[str, Any]]:
    """Per constraint: its text and how many measurements of its modality violate it."""
    out = []
    measured = list(measurements)
    for c in constraints:
        reducer = Reducer(c.name, dict(c.params), axis_of(c.modality))
        values = [reducer(m.signal) for m in measured if m.modality == c.modality]
        bad = sum(not c.holds(v) for v in values)
        out.append({"constraint": describe(c), "measured": len(values), "violated": bad})
    return out


def constraint_status(
    campaign: dict[str, Any], measurements: Sequence[Measurement], axis_of: Callable[[str], Any]
) -> dict[str, Any] | None:
    """``coscope status``'s ``constraints``: per constraint how many measurements violate it,
    and the feasibility mode; None without constraints or ``feasibility: learn``, for a
    user's scalarizer (never imported from a trace) or a spec that no longer parses."""
    constraints = campaign.get("constraints") or []
    learn = campaign.get("feasibility") == "learn"
    if not constraints and not learn:
        return None
    if not all(isinstance(c, dict) and c.get("name") in SCALARIZERS for c in constraints):
        return None
    try:
        spec = parse_spec(campaign)
        rows = violations(spec.constraints, measurements, axis_of)
    except (CoscopeError, KeyError):
        return None
    return {"constraints": rows, "feasibility": spec.feasibility}


def stopping_status(
    campaign: dict[str, Any], records: Iterable[Intervention]
) -> dict[str, Any] | None:
    """``coscope status``'s ``stopping``: the rule and, once it fired, its ``early_stop``
    row's step, values and reason; None without a stopping rule."""
    rule = campaign.get("stopping")
    if not isinstance(rule, dict):
        return None
    fired = next((dict(r.payload) for r in records if r.kind == EARLY_STOP), None)
    return {
        "rule": rule.get("rule"),
        "threshold": rule.get("threshold"),
        "patience": rule.get("patience"),
        "stopped": fired is not None,
        "step": None if fired is None else fired.get("step"),
        "values": None if fired is None else fired.get("values"),
        "reason": None if fired is None else fired.get("reason"),
    }


def status_lines(status: dict[str, Any]) -> list[str]:
    """The lines ``coscope status`` prints of ``constraints`` and ``stopping``."""
    lines = []
    found = status.get("constraints")
    if found:
        parts = [
            f"{r['constraint']}: {r['violated']} of {r['measured']} violate"
            for r in found["constraints"]
        ]
        if found["feasibility"] == "learn":
            n = len((status.get("failures") or {}).get("retired", []))
            parts.append(f"{n} decision(s) learned infeasible")
        lines.append("constrain  " + "; ".join(parts))
    stop = status.get("stopping")
    if stop:
        lines.append(
            f"stopping   {stop['reason']}"
            if stop["stopped"]
            else f"stopping   {stop['rule']} {stop['threshold']:g} for {stop['patience']} "
            "decisions (not reached)"
        )
    return lines
