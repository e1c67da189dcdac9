"""Evidence of GP hypotheses: the closed-form leave-one-out score and its weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from coscope.models import fit_model, load_model, predict
from coscope.models.evidence import loo_log_density, model_probabilities


def _wall(X: np.ndarray) -> np.ndarray:
    """A domain wall (angle 0.6 rad, position 0.1, height 3) plus a smooth non-physical
    residual, over normalised coordinates ``n x 2``."""
    along = (X[:, 0] - 0.5) * np.cos(0.6) + (X[:, 1] - 0.5) * np.sin(0.6)
    residual = 0.2 * np.sin(3 * X[:, 0]) * np.cos(2 * X[:, 1])
    return -0.5 + 1.5 * np.tanh((along - 0.1) / 0.05) + residual


def test_closed_form_loo_matches_refitting_without_each_point() -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(9, 2))
    y = np.sin(4 * X[:, 0]) + X[:, 1] + rng.normal(0, 0.05, 9)
    model = load_model(fit_model("structured", X, y, 0, 40, law="linear"))
    lpd = loo_log_density(model)
    # the same hyperparameters, conditioned on the other points, predict the left-out one
    (train_x,) = model.train_inputs
    z = model.train_targets
    s_y = float(model.outcome_transform.stdvs.reshape(-1)[0])
    with torch.no_grad():
        noise = float(model.likelihood.noise.reshape(-1)[0])
        for i in range(9):
            keep = [j for j in range(9) if j != i]
            K = model.covar_module(train_x).to_dense()
            m = model.mean_module(train_x)
            A = K[keep][:, keep] + noise * torch.eye(8, dtype=torch.float64)
            k = K[i, keep]
            mu = m[i] + k @ torch.linalg.solve(A, z[keep] - m[keep])
            var = K[i, i] + noise - k @ torch.linalg.solve(A, k)
            expected = -0.5 * (math.log(2 * math.pi * var) + (z[i] - mu) ** 2 / var)
            assert lpd[i] == pytest.approx(float(expected) - math.log(s_y), rel=1e-6)
    # the model is left usable for prediction
    mean, std = predict(model, X[:2])
    assert np.isfinite(mean).all() and np.isfinite(std).all()


def test_evidence_prefers_the_true_law() -> None:
    rng = np.random.default_rng(4)
    g = np.linspace(0.0, 1.0, 20)
    grid = np.array([(r, c) for r in g for c in g])
    X = grid[rng.choice(len(grid), 12, replace=False)]
    y = _wall(X) + rng.normal(0, 0.02, len(X))
    elpd = {}
    for law in ("domain_wall", "gaussian_peak", "linear", "none"):
        kind, options = ("gp", {}) if law == "none" else ("structured", {"law": law})
        elpd[law] = float(
            loo_log_density(load_model(fit_model(kind, X, y, 1, 60, **options))).sum()
        )
    probs = model_probabilities(np.array(list(elpd.values())))
    assert max(elpd, key=elpd.get) == "domain_wall"
    assert probs[0] > 0.9 and probs.sum() == pytest.approx(1.0)


def test_model_probabilities_are_softmax_weights() -> None:
    p = model_probabilities(np.array([0.0, math.log(3.0), -math.inf]))
    assert p == pytest.approx([0.25, 0.75, 0.0])
    assert model_probabilities(np.array([-math.inf, -math.inf])) == pytest.approx([0.5, 0.5])
    assert model_probabilities(np.array([1000.0, 0.0])) == pytest.approx([1.0, 0.0])
