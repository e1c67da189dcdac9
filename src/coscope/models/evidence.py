"""Evidence of a fitted GP hypothesis: its leave-one-out predictive log score, and weights.

Hypothesis learning (docs/hypotheses.md) weighs competing surrogates — structured GPs with
different physical laws as their mean, and perhaps a plain GP — by how well each predicts
the data it did not see. For an exact GP with mean ``m`` and covariance ``K + s2 I`` on the
(standardised) training targets ``z`` the leave-one-out predictive of point ``i`` given all
the others has the closed form (Rasmussen & Williams 2006, eq. 5.12):

    mu_-i = z_i - [A^-1 r]_i / [A^-1]_ii,   var_-i = 1 / [A^-1]_ii,   A = K + s2 I,  r = z - m

so the score costs one Cholesky of ``n x n``. The hyperparameters and law parameters are
those fitted on all ``n`` points (the usual, slightly optimistic, closed-form LOO). Scores
are converted to target units (``log p(y_i) = log p(z_i) - log s_y``), so the sum over
points — the expected log predictive density ``elpd_loo`` — compares models fitted on the
same data. :func:`model_probabilities` turns the scores of ``K`` hypotheses into
pseudo-Bayesian-model-averaging weights (Yao, Vehtari, Simpson & Gelman 2018):
``p_k = exp(elpd_k) / sum_j exp(elpd_j)``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from botorch.models import SingleTaskGP

from coscope.models.gp import DTYPE


def loo_log_density(model: SingleTaskGP) -> np.ndarray:
    """Leave-one-out log predictive density of every training point, target units (nats).

    Args:
        model: A fitted exact GP (:func:`~coscope.models.gp.load_model` of a ``GPState`` or a
            ``StructuredGPState``), any mode; it is left in eval mode.

    Returns:
        ``(n,)`` float64: ``log N(y_i | mu_-i, var_-i)`` with ``y`` in target units (the
        observation noise included); ``-inf`` everywhere if ``K + s2 I`` is not positive
        definite.
    """
    (X,) = model.train_inputs
    z = model.train_targets
    n = int(z.shape[-1])
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.train()  # train-mode mean and kernel on the training inputs (no caches)
        mean = model.mean_module(X).reshape(-1)
        K = model.covar_module(X).to_dense().reshape(n, n)
        noise = model.likelihood.noise.reshape(-1)[0]
        model.eval()
        A = K + noise * torch.eye(n, dtype=DTYPE)
        L, info = torch.linalg.cholesky_ex(A)
        if int(info) != 0:
            return np.full(n, -math.inf)
        inv = torch.cholesky_inverse(L)
        d = torch.diagonal(inv)
        resid = (inv @ (z.reshape(-1) - mean)) / d
        var = 1.0 / d
        lpd = -0.5 * (torch.log(2 * math.pi * var) + resid.square() / var)
    transform: Any = model.outcome_transform  # botorch's Standardize
    s_y = float(transform.stdvs.reshape(-1)[0])
    return lpd.numpy().astype(np.float64) - math.log(s_y)


def model_probabilities(elpd: np.ndarray) -> np.ndarray:
    """Pseudo-BMA weights of ``K`` hypotheses from their summed LOO scores ``(K,)`` (nats).

    Returns:
        ``(K,)`` probabilities summing to 1 (uniform when every score is ``-inf``).
    """
    elpd = np.asarray(elpd, dtype=np.float64).reshape(-1)
    finite = np.isfinite(elpd)
    if not finite.any():
        return np.full(elpd.shape, 1.0 / elpd.size)
    shifted = np.where(finite, elpd - elpd[finite].max(), -np.inf)
    weights = np.exp(shifted)
    return weights / weights.sum()
