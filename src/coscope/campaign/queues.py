"""Request queues of the campaign loop (``queue_depth``): the slot and the end-of-budget rule.

An instrument holds up to ``1 + queue_depth`` requests: the one it measures and those queued
behind it (decided ahead, chained on the executor). Near the end of the budget a request
queued on a slow instrument would keep the campaign running long after the others ran out
of budget, so a request is queued only while it would *start* before the budget left after
it is used up by all instruments working at their spec latencies:

    wait_i = n_queued_i · latency_i                        (s until the new request starts)
    left   = min( R / Σ_j 1/latency_j ,  C / Σ_j cost_j/latency_j )

with ``R`` the measurements and ``C`` the cost the budget leaves after this request (an
unlimited budget gives ``inf``), ``latency_j = latency_s × time_scale`` (the largest of an
instrument's per-modality latencies). Queue iff ``wait_i <= left``. With any latency 0 (dry
runs, ``time_scale: 0``) there is no horizon and only the count rule of the loop applies.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from coscope.config import CampaignSpec
from coscope.types import Measurement, Proposal


@dataclass(eq=False)  # identity: a handle or a signal has no useful ==
class Slot:
    """One request of an instrument's queue: in flight, queued, or replayed on resume.

    Attributes:
        proposal: The stored decision.
        handle: The executor's handle; None for a replayed one.
        stored: The measurement already in the trace (resume: measured before the stop).
    """

    proposal: Proposal
    handle: Any = None
    stored: Measurement | None = None


def latency(spec: CampaignSpec, name: str) -> float:
    """Seconds per measurement of instrument ``name`` (its slowest modality) × time_scale."""
    value = next(i.latency_s for i in spec.instruments if i.name == name)
    if isinstance(value, dict):
        value = max(value.values())
    return float(value) * spec.time_scale


def starts_in_time(
    spec: CampaignSpec,
    instrument: str,
    n_queued: int,
    active: Sequence[str],
    cost_of: Callable[[str], float],
    n_committed: int,
    cost_committed: float,
) -> bool:
    """Whether a request queued now behind ``n_queued`` others on ``instrument`` would start
    before the budget left after it runs out (the rule in the module docstring).

    Args:
        spec: The campaign spec (budget, latencies, time_scale).
        instrument: Where the request would be queued.
        n_queued: Requests already in its queue (in flight + queued).
        active: Instruments that take requests.
        cost_of: Cost of one measurement per instrument name.
        n_committed: Measurements done + requests in flight or queued, before this one.
        cost_committed: Cost spent + expected cost of those in flight or queued.
    """
    lat = {name: latency(spec, name) for name in active}
    if not lat or min(lat.values()) <= 0.0:
        return True
    budget, left = spec.budget, math.inf
    if budget.max_measurements is not None:
        remaining = budget.max_measurements - n_committed - 1
        left = min(left, remaining / sum(1.0 / v for v in lat.values()))
    if budget.max_cost is not None:
        remaining_cost = budget.max_cost - cost_committed - cost_of(instrument)
        left = min(left, remaining_cost / sum(cost_of(n) / v for n, v in lat.items()))
    return n_queued * lat[instrument] <= left
