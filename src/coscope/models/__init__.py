"""Surrogate models. They fit data and predict; they know nothing of acquisition."""

from __future__ import annotations

from coscope.models.gp import GPState, fit_gp, load_model, predict

__all__ = ["GPState", "fit_gp", "load_model", "predict"]
