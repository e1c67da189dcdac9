"""After a crash: log to the tracker exactly the events of the trace it lacks.

The trace is written first, the tracker after (DESIGN.md, "How data flows"), and per-event
metrics reach MLflow through a background writer (:mod:`coscope.infra.metric_writer`), so a
crash may leave in the trace steps that MLflow never got — typically the last one or two. On
resume the loop reads which steps the run holds (:meth:`Tracker.logged_steps`) and, before it
continues, logs the missing ones from the trace, computed as the uninterrupted run computed
them:

* **decisions** and **fits** are logged from their stored records (:func:`missing_decisions`,
  :func:`missing_fits`) — a record holds every value its metrics are made of;
* **measurement rows** (reward, best so far, cost spent, prediction error) depend on what the
  agent knew after that measurement, so they are logged by the
  :class:`~coscope.campaign.record.Recorder` while it hands the stored measurements back one
  by one from the first missing one on (:func:`missing_measurements` names them; the row is
  :func:`history_row`, the same one a live measurement logs).

Nothing is logged twice: a second resume finds every step and logs nothing.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping

from coscope.campaign.tracker import LoggedSteps, Tracker
from coscope.types import FitRecord, Measurement, Proposal


def history_row(
    step: int,
    reward: float,
    best: float,
    spent: float,
    n_measured: int,
    prediction: Mapping[str, float],
) -> dict[str, float]:
    """The per-measurement row the tracker logs (and the loop's history keeps).

    Args:
        step: The measurement's step.
        reward: Its target value (NaN for another modality).
        best: The best target value so far (``-inf`` before the first).
        spent: Cost spent so far, this measurement included.
        n_measured: Measurements the campaign paid for, this one included.
        prediction: Prediction errors against ground truth (``rmse`` …), or empty.
    """
    row = {
        "step": float(step),
        "reward": reward,
        "best_so_far": best if math.isfinite(best) else math.nan,
        "cost_spent": spent,
        "n_measurements": float(n_measured),
    }
    row.update(prediction)
    return row


def missing_decisions(decisions: Iterable[Proposal], logged: LoggedSteps) -> list[Proposal]:
    """Stored decisions whose step the tracker lacks, in step order."""
    if logged.decisions is None:
        return []
    return [d for d in decisions if d.step not in logged.decisions]


def missing_fits(fits: Iterable[FitRecord], logged: LoggedSteps) -> list[FitRecord]:
    """Stored fits the tracker lacks: per step, the later ones beyond the count it holds.

    Fits are logged in trace order, so when a step holds fewer fits in the tracker than in the
    trace, the missing ones are the last of that step.
    """
    if logged.fits is None:
        return []
    held = Counter(logged.fits)
    seen: Counter[int] = Counter()
    missing = []
    for record in fits:
        seen[record.step] += 1
        if seen[record.step] > held[record.step]:
            missing.append(record)
    return missing


def missing_measurements(
    measurements: Iterable[Measurement], paid: set[int], logged: LoggedSteps
) -> frozenset[int]:
    """Steps of the stored measurements whose row the tracker lacks.

    Args:
        measurements: The stored measurements.
        paid: Steps a :class:`~coscope.campaign.sources.MeasurementSource` recorded (they
            have no row: their source logs only their decisions).
        logged: What the tracker holds.
    """
    if logged.measurements is None:
        return frozenset()
    return frozenset(
        m.step for m in measurements if m.step not in paid and m.step not in logged.measurements
    )


def log_missing_records(
    tracker: Tracker, decisions: Iterable[Proposal], fits: Iterable[FitRecord], logged: LoggedSteps
) -> tuple[int, int]:
    """Log the stored decisions and fits ``tracker`` lacks; returns how many of each."""
    lost_decisions = missing_decisions(decisions, logged)
    lost_fits = missing_fits(fits, logged)
    for decision in lost_decisions:
        tracker.log_decision(decision)
    for record in lost_fits:
        tracker.log_fit(record)
    return len(lost_decisions), len(lost_fits)
