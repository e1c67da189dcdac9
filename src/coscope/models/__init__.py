"""Surrogate models. They fit data and predict; they know nothing of acquisition."""

from __future__ import annotations

from coscope.models.dkl import DKLState, embed, fit_dkl, load_latent_model, predict_dkl
from coscope.models.fitting import fit_model, model_kinds, register_model
from coscope.models.gp import GPState, fit_gp, load_model, predict
from coscope.models.patches import patch_features

__all__ = [
    "DKLState",
    "GPState",
    "embed",
    "fit_dkl",
    "fit_gp",
    "fit_model",
    "load_latent_model",
    "load_model",
    "model_kinds",
    "patch_features",
    "predict",
    "predict_dkl",
    "register_model",
]
