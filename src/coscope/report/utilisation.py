"""Instrument utilisation from the trace: fraction of campaign wall time each one was busy.

For instrument ``i`` with measurement intervals ``[t_start, t_end]`` (unix seconds, from the
trace), ``busy_i = |union of its intervals|`` and

    utilisation_i = busy_i / (T_end - T_start)

where ``T_start`` is the earliest decision time of the campaign (``t_decided``; the earliest
``t_start`` if no decision carries a time) and ``T_end`` the latest ``t_end``. Across a resume
the gap while nothing ran counts as idle time. The *steady* variant ends the window at the
last decision (``T_end = max t_decided``, intervals clipped to the window): once the budget
allows no new decision, fast instruments necessarily wait for the slowest to finish, which
says nothing about the orchestration. Plain data in, plain dict out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from coscope.types import Measurement, Proposal

if TYPE_CHECKING:  # the context module loads the agents' protocols; this one stays light
    from coscope.campaign.context import CampaignContext


def _union_length(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def utilisation(
    measurements: Sequence[Measurement],
    decisions: Sequence[Proposal] = (),
    instruments: Sequence[str] = (),
    *,
    until_last_decision: bool = False,
) -> dict[str, float]:
    """Busy fraction per instrument (0..1); every name in ``instruments`` gets an entry.

    Args:
        measurements: Stored measurements (``instrument``, ``t_start``, ``t_end``).
        decisions: Stored decisions; their earliest ``t_decided`` starts the campaign clock.
        instruments: Names to report even if they never measured (0.0).
        until_last_decision: End the window at the last decision instead of the last
            ``t_end`` (the *steady* utilisation: it leaves out the tail in which the budget
            is spent and fast instruments wait for the slowest to finish), intervals clipped.

    Returns:
        ``{instrument: fraction}``; empty when nothing was measured.
    """
    timed = [m for m in measurements if m.t_end > 0]
    if not timed:
        return {}
    decided = [d.t_decided for d in decisions if d.t_decided > 0]
    t0 = min(min(decided or [m.t_start for m in timed]), min(m.t_start for m in timed))
    t1 = max(m.t_end for m in timed)
    if until_last_decision and decided:
        t1 = max(decided)
    per: dict[str, list[tuple[float, float]]] = {name: [] for name in instruments}
    for m in timed:
        per.setdefault(m.instrument, []).append((max(m.t_start, t0), min(m.t_end, t1)))
    if t1 <= t0:
        return {name: 0.0 for name in per}
    clipped = {name: [(a, b) for a, b in iv if b > a] for name, iv in per.items()}
    return {name: min(1.0, _union_length(iv) / (t1 - t0)) for name, iv in clipped.items()}


def co_orchestration_metrics(ctx: CampaignContext) -> tuple[dict[str, float], dict[str, Any]]:
    """Final metrics (utilisation, per-modality counts/cost/RMSE, task covariance) and arrays.

    Args:
        ctx: The :class:`~coscope.campaign.CampaignContext` at the end of a run.

    Returns:
        ``(metrics, arrays)``: ``utilisation.<instrument>``, ``modality.<m>.n``,
        ``modality.<m>.cost``, ``modality.<m>.rmse`` (when the agent maps ``m`` and the sample
        has its ground truth), ``task_cov.<s>_<t>``; arrays ``task_covariance.npy``. The
        per-modality maps and the task covariance come from an agent that
        :class:`~coscope.agents.protocols.ReportsTasks`.
    """
    import numpy as np

    measurements, decisions = ctx.store.measurements(), ctx.store.decisions()
    names = [i.name for i in ctx.spec.instruments]
    metrics: dict[str, float] = {
        f"utilisation.{k}": v for k, v in utilisation(measurements, decisions, names).items()
    }
    for m in measurements:
        metrics[f"modality.{m.modality}.n"] = metrics.get(f"modality.{m.modality}.n", 0.0) + 1
        key = f"modality.{m.modality}.cost"
        metrics[key] = metrics.get(key, 0.0) + m.cost
    arrays: dict[str, Any] = {}
    agent = ctx.abilities.tasks  # an agent that learns several modalities
    if agent is None:
        return metrics, arrays
    for modality, reducer in agent.reducers.items():
        truth = ctx.sample.truth.get(modality)
        if truth is None:
            continue
        h, w, _ = truth.shape
        true_map = np.array([reducer(s) for s in truth.reshape(h * w, -1)]).reshape(h, w)
        mean, _ = agent.predict(modality)
        if np.isfinite(mean).all():
            metrics[f"modality.{modality}.rmse"] = float(np.sqrt(np.mean((mean - true_map) ** 2)))
    cov = agent.task_covariance()
    if cov is not None:
        arrays["task_covariance.npy"] = cov
        for s in range(cov.shape[0]):
            for t in range(s, cov.shape[0]):
                metrics[f"task_cov.{s}_{t}"] = float(cov[s, t])
    return metrics, arrays
