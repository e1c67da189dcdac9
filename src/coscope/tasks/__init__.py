"""Prefect tasks: a few lines each around plain functions."""

from coscope.tasks.fit import fit_surrogate, fit_task
from coscope.tasks.measure import measure_by_reference, measure_task

__all__ = ["fit_surrogate", "fit_task", "measure_by_reference", "measure_task"]
